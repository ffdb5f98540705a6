"""Issue #19's step attribution: the plain flax + optax reference step (benchmarks/reference_step.py)
against the library's step, the ablation runner (benchmarks/ablations.py) and the PyTorch peer
(benchmarks/peers/torch_simclr_step.py; torch is optional: its tests skip without it).

The reference has the library's parameter tree at full size (traced, nothing computed) and, given the
library's parameters, its loss and gradients on the same float views; the ablation runner's table has
every row, the attribution and the peer's rows; the peer's case shapes are the library cases' and its
loss is the reference's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import config_util, parallel
from ssl_jax.methods import get_method

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)
import ablations  # noqa: E402
import reference_step  # noqa: E402
from throughput_lib.cases import CASES  # noqa: E402

# A ResNet of one block per stage at 8 px with a narrow projector: the same code, cheap to compile.
_TINY = [
    "augment.image_size=8",
    "model.projector.hidden_dim=16",
    "model.projector.output_dim=8",
    "model.dtype=float32",
]


def _config(case: str, examples: int, overrides: list[str]):
    config = CASES[case].config_fn(examples)
    config_util.apply_overrides(config, overrides)
    return config


def _shapes(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


@pytest.mark.parametrize("case", ["simclr_r18_cifar", "simclr_r50_224"])
def test_the_full_step_is_simclrs_lars_recipe(case):
    # What the GPU baseline ran, so the "SGD instead of LARS" row changes the optimizer.
    optim = CASES[case].config_fn(2).optim
    assert (optim.name, optim.learning_rate, optim.weight_decay) == ("lars", 0.3, 1e-6)


@pytest.mark.parametrize("case", ["simclr_r18_cifar", "simclr_r50_224"])
def test_reference_has_the_library_parameter_tree(case):
    config = _config(case, 2, [])
    method = get_method(config, num_steps=10, steps_per_epoch=10)
    size = config.augment.image_size
    library = jax.eval_shape(lambda: method.init(jax.random.key(0), (size, size, 3)))
    model = ablations._reference_network(config)
    x = jnp.zeros((2, size, size, 3), jnp.float32)
    reference = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=True))
    assert _shapes(reference["params"]) == _shapes(library.params)
    assert _shapes(reference["batch_stats"]) == _shapes(library.batch_stats)


@pytest.mark.parametrize("case, stages", [("simclr_r18_cifar", (1, 1)), ("simclr_r50_224", (1,))])
def test_reference_loss_and_gradients_equal_the_library(case, stages):
    # Basic blocks with the CIFAR stem, bottlenecks with the ImageNet stem (a strided second stage in
    # the first), each given the library's parameters and the same views.
    stem = "cifar" if case == "simclr_r18_cifar" else "imagenet"
    kwargs = {"stem": stem, "stage_sizes": stages}
    config = _config(case, 4, [*_TINY, f"model.encoder_kwargs={kwargs!r}"])
    method = ablations.PremadeViews(config, num_steps=10, steps_per_epoch=10)
    variables = jax.jit(method.init, static_argnums=1)(jax.random.key(0), (8, 8, 3))
    rng = np.random.default_rng(0)
    x1, x2 = (jnp.asarray(rng.standard_normal((4, 8, 8, 3)), jnp.float32) for _ in range(2))
    batch = {"view1": x1, "view2": x2, "example_ids": jnp.arange(4)}

    def library_loss(params):
        loss, aux = method.loss_fn(
            params, variables.batch_stats, {}, batch, rng=None, step=0, axis_name=None
        )
        return loss, aux.batch_stats

    model = ablations._reference_network(config)
    temperature = float(config.simclr.temperature)

    def reference_loss(params):
        return reference_step.loss_fn(
            model, params, variables.batch_stats, x1, x2, temperature=temperature
        )

    (lib, lib_stats), lib_grads = jax.jit(jax.value_and_grad(library_loss, has_aux=True))(
        variables.params
    )
    (ref, ref_stats), ref_grads = jax.jit(jax.value_and_grad(reference_loss, has_aux=True))(
        variables.params
    )
    assert np.isfinite(float(lib)) and float(lib) > 0
    np.testing.assert_allclose(ref, lib, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(ref_grads), jax.tree.leaves(lib_grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
    for a, b in zip(jax.tree.leaves(ref_stats), jax.tree.leaves(lib_stats), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_reference_step_trains():
    model = reference_step.network(
        "resnet18", stem="cifar", hidden_dim=16, output_dim=8, stage_sizes=(1,), dtype=jnp.float32
    )
    tx = reference_step.optimizer(0.1)
    state = reference_step.init(model, tx, jax.random.key(0), (8, 8, 3))
    before = jax.tree.map(np.array, state.params)
    step = reference_step.make_step(model, tx)
    rng = np.random.default_rng(1)
    x1, x2 = (jnp.asarray(rng.standard_normal((4, 8, 8, 3)), jnp.float32) for _ in range(2))
    for _ in range(2):
        state, loss = step(state, x1, x2)
    assert np.isfinite(float(loss))
    moved = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params), strict=True)
    ]
    assert all(moved)


def test_ablation_runner_writes_every_row(tmp_path):
    # The stem alone (no residual stage): the runner is checked here, the networks above.
    overrides = [*_TINY, "model.encoder_kwargs={'stem': 'cifar', 'stage_sizes': ()}"]
    base = CASES["simclr_r18_cifar"]

    def light(batch):  # crop and flip only: the augmentation compiles into seven of the programs
        config = base.config_fn(batch)
        config.augment.jitter_prob = config.augment.grayscale_prob = 0.0
        return config

    case = dataclasses.replace(base, config_fn=light)
    mesh = parallel.make_mesh(jax.devices()[:1])
    config, programs = ablations.build_programs(case, 4, mesh, overrides)
    ablations.compile_all(programs, workers=2)
    rows = ablations.time_programs(programs, warmup=1, steps=1, deadline=float("inf"))
    assert set(rows) == set(ablations.ROWS)
    assert all(r["step_s"] > 0 for r in rows.values())
    entry = {
        "case": case.name,
        "model": case.model,
        "views": 8,
        "what": {p.name: p.what for p in programs},
        "rows": rows,
        "compile_s": 1.0,
    }
    # The page as gpu_step_attribution.sh makes it: the results' JSON re-rendered with the peer's.
    results = {"env": {"device": "test"}, "command": "cmd", "cases": [entry], "throughput_rows": []}
    with open(tmp_path / "page.json", "w") as f:
        json.dump(results, f)
    peer = {
        "torch": "x",
        "device": "cpu",
        "rows": [
            {"case": case.name, "variant": "eager", "step_ms": 1e3 * rows["reference"]["step_s"]},
            {"case": case.name, "variant": "torch.compile", "skipped": "time budget"},
        ],
    }
    with open(tmp_path / "peer.json", "w") as f:
        json.dump(peer, f)
    page = str(tmp_path / "page.md")
    args = ["--render", str(tmp_path / "page.json"), "--peer-results", str(tmp_path / "peer.json")]
    assert ablations.main([*args, "--output", page]) == 0
    text = open(page).read()
    for name in (*ablations.ROWS, "PyTorch eager", "PyTorch torch.compile"):
        assert f"| {name} |" in text
    assert "| PyTorch torch.compile | " in text and "| time budget |" in text
    assert "| gap: full step - reference |" in text and "not explained" in text
    # The row on device reuses the full step's executable: the difference is the copy alone.
    assert programs[1].compiled is programs[0].compiled


def _torch_peer():
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    import importlib.util

    path = os.path.join(BENCHMARKS, "peers", "torch_simclr_step.py")
    spec = importlib.util.spec_from_file_location("torch_simclr_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_peer_cases_are_the_library_cases():
    peer = _torch_peer()
    for name, spec in peer.CASES.items():
        config = CASES[name].config_fn(CASES[name].examples)
        assert spec["examples"] == CASES[name].examples
        assert spec["size"] == config.augment.image_size
        assert (
            spec["arch"] == config.model.encoder
            and spec["stem"] == config.model.encoder_kwargs["stem"]
        )
        assert peer.PROJECTOR == (
            config.model.projector.hidden_dim,
            config.model.projector.output_dim,
        )
        assert peer.TEMPERATURE == config.simclr.temperature


def test_torch_peer_step_runs_and_its_loss_is_the_reference_loss():
    peer = _torch_peer()
    import torch

    rng = np.random.default_rng(2)
    z1, z2 = rng.standard_normal((2, 6, 8)).astype(np.float32)
    got = peer.nt_xent(torch.from_numpy(z1), torch.from_numpy(z2), 0.2)
    want = reference_step.nt_xent(jnp.asarray(z1), jnp.asarray(z2), 0.2)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)

    torch.manual_seed(0)
    model = peer.network("resnet18", "cifar", hidden=16, out=8).to(
        memory_format=torch.channels_last
    )
    opt = peer.optimizer(model, lr=0.1)
    step = peer.make_step(model, opt, compile=False, device="cpu")
    x1, x2 = (
        torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last) for _ in range(2)
    )
    before = [p.detach().clone() for p in model.parameters()]
    losses = [float(step(x1, x2)) for _ in range(2)]
    assert all(np.isfinite(losses))
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
