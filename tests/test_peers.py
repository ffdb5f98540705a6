"""The PyTorch peer (benchmarks/peers/lightly_fashion_mnist.py): every method takes a training step, a run
scores its encoder with ssl_jax's kNN and linear probe, and the comparison table holds both libraries.

The peer's dependencies (torch, torchvision, lightly: the `peer` extra) are optional; without them the peer
tests skip and only the table test runs.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str, *parts: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _load("reproduce", "reproduce.py")


def _peer():
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("lightly")
    return _load("lightly_fashion_mnist", "peers", "lightly_fashion_mnist.py")


@pytest.mark.parametrize(
    "method,net",
    [(m, "small_cnn") for m in ("simclr", "byol", "barlow_twins", "vicreg", "moco_v2", "dino")]
    + [("simclr", "resnet18")],
)
def test_every_peer_method_takes_a_step(method, net):
    peer = _peer()
    import torch

    torch.manual_seed(0)
    images, _ = peer.load_split("", "train")
    model = peer.Peer(
        method,
        peer.backbone(net),
        peer.head_dims(method, net),
        size=28,
    )
    dataset = peer.ViewDataset(images[:8], model.transform)
    views = [torch.stack(v) for v in zip(*(dataset[i] for i in range(8)), strict=True)]
    assert len(views) == (8 if method == "dino" else 2)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model.loss(views, step=0, total=10, epoch=0)
    assert torch.isfinite(loss)
    loss.backward()
    model.after_backward(epoch=0)
    optimizer.step()
    after = list(model.backbone.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_peer_run_is_scored_by_ssl_jax_protocols(tmp_path):
    peer = _peer()
    out = str(tmp_path / "peer")
    args = peer.parse_args(
        ["--data-dir", "", "--max-steps", "2", "--workers", "0", "--out", out, "--log-every", "1"]
    )
    # kNN only: the linear probe is ssl_jax's own code, tested in test_evaluate.py.
    flags = [
        "--max-steps",
        "2",
        "--workers",
        "0",
        "--eval-train-examples",
        "1000",
        "--protocols=knn",
    ]
    assert peer.main(["--data-dir", "", *flags, "--out", out]) == 0
    with open(os.path.join(out, "result.json")) as f:
        result = json.load(f)
    assert result["steps"] == 2 and args.batch_size == result["batch_size"] == 256
    assert set(result["top1"]) == {"knn"}
    assert all(0.1 < v <= 1.0 for v in result["top1"].values())  # above chance on 10 classes
    with np.load(os.path.join(out, "features.npz")) as f:
        assert f["train"].shape[1] == f["test"].shape[1] == 128  # the small CNN's width
    assert result["head_dims"] == [256, 64]  # configs/simclr_fashion_mnist.py:small_cnn's projector


def test_comparison_table_holds_both_libraries(tmp_path):
    args = reproduce.argparse.Namespace(
        dataset="fashion_mnist",
        variant="small_cnn",
        protocols=["knn", "linear"],
        machine="test machine",
    )
    rows = [
        {"method": "random init", "library": "ssl_jax", "config": "c", "epochs": 0.0, "batch": 0,
         "top1": {"knn": 0.80, "linear": 0.79}, "pretrain_seconds": None},
        {"method": "simclr", "library": "ssl_jax", "config": "c", "epochs": 3.0, "batch": 256,
         "top1": {"knn": 0.85, "linear": 0.86}, "pretrain_seconds": 100.0,
         "images_per_second": 1800.0},
        {"method": "simclr", "library": "lightly", "config": "p", "epochs": 3.0, "batch": 256,
         "top1": {"knn": 0.84, "linear": 0.85}, "pretrain_seconds": 300.0,
         "images_per_second": 600.0},
    ]  # fmt: skip
    text = reproduce.peer_markdown(
        rows, ["python benchmarks/reproduce.py --compare-peer"], args, ""
    )
    assert "# fashion-mnist, small_cnn" in text
    assert "| simclr | lightly | `p` | 3 | 256 | 84.00% |" in text
    assert "| random init | ssl_jax | `c` | 0 | — | 80.00% |" in text
    assert "| simclr | ssl_jax | 100 | 1,800 |" in text
    assert text.count("## ") == 3  # knn, linear, wall time
