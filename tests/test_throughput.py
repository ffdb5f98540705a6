"""benchmarks/throughput.py's pieces (benchmarks/throughput_lib/). The analytic counts: parameter counts
against the published exact figures and against our own Flax models, FLOPs against Megatron-LM's
closed form, DeiT's and torchvision's figures, a matmul-by-matmul enumeration of MAE, and a count of
every matmul and convolution in our traced models and training steps; the peak table's lookup; a tiny
case timed with real data, checkpoints and a profile; and the HLO kinds of a GPU-style module."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.methods import common

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from throughput_lib import cases, flops, profile, runner, tables  # noqa: E402

from engine_checks import idx_bytes, traced_equations


def _count(variables) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables))


def test_parameter_counts_match_the_published_models():
    assert flops.gpt2_param_count() == 124_439_808  # GPT-2 small (HF "gpt2")
    assert flops.bert_param_count() == 109_482_240  # BERT-base uncased, with the pooler
    assert flops.vit_param_count(num_classes=1000) == 86_567_656  # ViT-B/16 (timm), with its head


def test_parameter_counts_match_our_models():
    # Small widths: the formulas are checked at the published sizes above; here, that they describe
    # our modules' layout (timm's ViT; a GPT-2 stack whose tied LM head adds an output bias).
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    vit = models.ViT(hidden_dim=32, depth=2, num_heads=2, patch_size=16)
    shapes = jax.eval_shape(lambda: vit.init(jax.random.key(0), x, train=False))
    assert _count(shapes["params"]) == flops.vit_param_count(
        image_size=64, patch_size=16, width=32, depth=2
    )
    from ssl_jax.models.transformer import CausalDecoder

    gpt = CausalDecoder(
        vocab_size=1000, hidden_dim=32, num_layers=2, num_heads=2, mlp_dim=128, max_len=64
    )
    tokens = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda: gpt.init(jax.random.key(0), tokens))
    expected = flops.gpt2_param_count(vocab_size=1000, seq_len=64, width=32, layers=2) + 1000
    assert _count(shapes["params"]) == expected


@pytest.mark.parametrize("seq_len, vocab", [(1024, 50257), (512, 30522), (128, 8000)])
def test_lm_flops_equal_megatron_closed_form(seq_len, vocab):
    # Narayanan et al. 2021, Sec. 5.1: 72 B s l h^2 (1 + s / 6h + V / 12 l h) per iteration, no recompute.
    layers, h, b = 12, 768, 4
    megatron = (
        72 * b * seq_len * layers * h**2 * (1 + seq_len / (6 * h) + vocab / (12 * layers * h))
    )
    got = flops.lm_train_flops_per_token(seq_len=seq_len, width=h, layers=layers, vocab_size=vocab)
    np.testing.assert_allclose(got * b * seq_len, megatron, rtol=1e-12)


def test_vit_b16_forward_matches_deit_figure():
    # DeiT-B / ViT-B/16 at 224: 17.6 G multiply-adds (Touvron et al. 2021, Table 1, "FLOPs").
    forward = flops.vit_forward_flops(image_size=224, patch_size=16, width=768, depth=12)
    np.testing.assert_allclose(forward / 2, 17.6e9, rtol=0.01)


def test_mae_flops_by_enumerating_matmuls():
    # 64 px, patch 16: 16 patches, 4 kept at 0.75; encoder width 8 depth 2, decoder width 4 depth 1.
    n, kept, pix, d, dd = 16, 4, 16 * 16 * 3, 8, 4

    def block(tokens, width):  # (m, k, n) of every matmul of one layer, heads folded together
        return [(tokens, width, 3 * width), (tokens, tokens, width), (tokens, width, tokens)] + [
            (tokens, width, width),
            (tokens, width, 4 * width),
            (tokens, 4 * width, width),
        ]

    matmuls = [(kept, pix, d)] + 2 * block(kept + 1, d) + [(kept + 1, d, dd)]
    matmuls += block(n + 1, dd) + [(n, dd, pix)]
    expected = 3 * sum(2 * m * k * o for m, k, o in matmuls)
    got = flops.mae_train_flops_per_image(
        image_size=64, patch_size=16, width=d, depth=2, decoder_width=dd, decoder_depth=1
    )
    assert got == expected
    # The ViT-B/16 default: the decoder over all 197 tokens costs more than the encoder over 50.
    assert 50e9 < flops.mae_train_flops_per_image() < 65e9


def traced_flops(jaxpr) -> int:
    """FLOPs of every matmul and convolution in a jaxpr, sub-jaxprs included (2 per multiply-add).
    A convolution with lhs_dilation (the input gradient of a strided one) multiplies only the
    1 / prod(dilation) of its window taps that fall on real inputs, not on the inserted zeros."""
    total = 0
    for eqn in traced_equations(jaxpr):
        out = int(np.prod(eqn.outvars[0].aval.shape)) if eqn.outvars else 0
        if eqn.primitive.name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            taps = int(np.prod(rhs)) // rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += 2 * out * taps // int(np.prod(eqn.params["lhs_dilation"]))
        elif eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * out * int(np.prod([lhs[d] for d in contracting]))
    return total


def test_backbone_flops_match_published_figures():
    # torchvision's model table (multiply-adds, with the 1000-way classifier, which our trunks lack).
    r50 = flops.resnet_forward_flops(stage_sizes=(3, 4, 6, 3), bottleneck=True)
    np.testing.assert_allclose(r50 / 2 + 2048 * 1000, 4.09e9, rtol=0.002)
    r18 = flops.resnet_forward_flops(stage_sizes=(2, 2, 2, 2), bottleneck=False)
    np.testing.assert_allclose(r18 / 2 + 512 * 1000, 1.81e9, rtol=0.003)
    # DeiT-S = ViT-S/16 at 224: 4.6 G multiply-adds (Touvron et al. 2021, Table 1).
    vit_s = flops.vit_forward_flops(image_size=224, patch_size=16, width=384, depth=12)
    np.testing.assert_allclose(vit_s / 2, 4.6e9, rtol=0.01)


@pytest.mark.parametrize(
    "encoder, size, channels",
    [
        ("resnet18", 32, 3),  # CIFAR stem
        ("resnet18", 28, 1),  # CIFAR stem, Fashion-MNIST
        ("resnet50", 224, 3),
        ("resnet50", 97, 3),  # odd sides through the strided convs and the max-pool
        ("vit_small", 224, 3),
        ("vit_small", 96, 3),  # DINO's local crops
    ],
)
def test_backbone_flops_equal_a_count_of_our_traced_model(encoder, size, channels):
    from ssl_jax import default_config

    config = default_config.get_config()
    config.model.encoder = encoder
    config.model.encoder_kwargs = (
        {"stem": "cifar" if size < 64 else "imagenet"} if encoder.startswith("resnet") else {}
    )
    config.data.channels = channels
    module = common.build_encoder(config, axis_name=None)
    x = jnp.zeros((1, size, size, channels))
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
    jaxpr = jax.make_jaxpr(lambda v, x: module.apply(v, x, train=False))(variables, x)
    assert cases.backbone_forward_flops(config, size) == traced_flops(jaxpr.jaxpr)


# Each case's networks, shrunk so the step traces in seconds; the formulas read the shapes from the
# config, so the same code is checked, and the backbones are checked at full size above.
_SMALL = {
    "simclr_r18_cifar": [],
    "byol_r50_224": [
        "model.encoder=resnet18",
        "model.encoder_kwargs={'stem': 'cifar'}",
        "augment.image_size=32",
        "model.projector.hidden_dim=64",
        "model.predictor.hidden_dim=64",
    ],
    "moco_v3_vit_s16": [
        "model.encoder_kwargs={'patch_size': 8, 'position_embedding': 'sincos', 'depth': 2}",
        "augment.image_size=32",
        "model.projector.hidden_dim=64",
        "model.predictor.hidden_dim=64",
    ],
    "dino_vit_s16": [
        "model.encoder_kwargs={'patch_size': 8, 'depth': 2}",
        "augment.global_size=32",
        "augment.local_size=16",
        "augment.num_local=4",
        "model.head.hidden_dim=64",
        "model.head.output_dim=256",
    ],
}


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_case_flops_match_a_count_of_the_traced_training_step(name):
    """3 x forward for what is trained, 1 x for EMA targets, per view or crop: the whole jitted step
    (augmentation, networks, loss, update) counted. The count also holds the augmentation's resampling
    matmuls and blur and the loss's similarity matmuls, and lacks the input gradient of the first
    layer (nothing needs it); together well under 1%."""
    from ssl_jax import config_util, optim, parallel, train
    from ssl_jax.methods import get_method

    case, examples = cases.CASES[name], 4
    config = case.config_fn(examples)
    config_util.apply_overrides(config, _SMALL[name])
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 10, 100), 100)
    images = cases._images(32)(np.random.default_rng(0), examples, config)["image"]
    state = jax.eval_shape(
        lambda: train.create_train_state(method, tx, jax.random.key(0), images.shape[1:])
    )
    step = train.make_train_step(method, tx, schedule, parallel.make_mesh(jax.devices()[:1]))
    batch = {"image": images, "example_ids": np.arange(examples, dtype=np.int32)}
    counted = traced_flops(jax.make_jaxpr(step)(state, batch).jaxpr)
    analytic = case.flops_per_item(config) * examples * case.items_per_example(config)
    np.testing.assert_allclose(analytic, counted, rtol=0.005)


def test_peak_lookup():
    assert flops.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert flops.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert flops.peak_tflops("NVIDIA H200") == 989.0
    assert flops.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert flops.peak_tflops("TPU v5 lite") == 197.0 and flops.peak_tflops("TPU v5") == 459.0
    assert flops.peak_tflops("cpu") is None


def _write_fashion_mnist(directory, n=64):
    """Train / test IDX files of random 28x28 images."""
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (directory / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images, 0x08))
        (directory / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 0x08))
    return str(directory)


def test_real_data_and_checkpoint_timings_run(tmp_path):
    """The Fashion-MNIST case fed by the training loader over real files, and timed around
    asynchronous saves (tiny encoder, few steps: that the measurements run and are sane)."""
    from ssl_jax import config_util, parallel

    make = cases.CASES["simclr_r18_fmnist"].config_fn

    def tiny(batch):
        config = make(batch)
        config_util.apply_overrides(
            config,
            [
                "model.encoder=small_cnn",
                "model.encoder_kwargs={'widths': (8, 16), 'strides': (2, 2)}",
                "model.dtype=float32",
            ],
        )
        return config

    import dataclasses

    case = dataclasses.replace(cases.CASES["simclr_r18_fmnist"], config_fn=tiny)
    row = runner.run_case(
        case,
        examples=16,
        steps=1,
        warmup=1,
        mesh=parallel.make_mesh(jax.devices()[:1]),  # one device: the cheapest compile
        data_dir=_write_fashion_mnist(tmp_path),
        checkpoint_every=4,
        profile_dir=str(tmp_path / "profiles"),
        profile_steps=2,
    )
    assert row["real_data"] == "fashion_mnist" and row["real_items_per_s"] > 0
    assert 0 < row["real_vs_synthetic"] < 100 and row["loader_items_per_s"] > 0
    assert row["near_save_ms"] > 0 and row["other_ms"] > 0
    text = tables.to_markdown([row], {"device": "test"}, "cmd")
    assert "| simclr_r18_fmnist | fashion_mnist |" in text and "| 4 steps |" in text
    # The profile: a trace on disk, op time split by kind, the top ops named after HLO instructions.
    prof = row["profile"]
    assert os.listdir(prof["trace"]) and prof["ms_per_step"] > 0
    np.testing.assert_allclose(sum(share for _, share in prof["categories"]), 1.0, rtol=1e-6)
    hlo = open(tmp_path / "profiles" / "simclr_r18_fmnist" / "step.hlo.txt").read()
    kinds = dict(prof["categories"])
    assert kinds.get("convolution", 0) + kinds.get("matmul", 0) > 0
    named = [name for name, kind, *_ in prof["top"] if not kind.startswith("other")]
    assert named and all(name in hlo for name in named)
    assert "Profile of simclr_r18_fmnist (jax.profiler" in text


_GPU_HLO = """HloModule jit_step, entry_computation_layout={(f32[8]{0})->f32[8]{0}}

%fused_dot (p0: bf16[64,64], p1: bf16[64,64]) -> bf16[64,64] {
  %p0 = bf16[64,64]{1,0} parameter(0)
  %p1 = bf16[64,64]{1,0} parameter(1)
  ROOT %dot.1 = bf16[64,64]{1,0} dot(bf16[64,64]{1,0} %p0, bf16[64,64]{1,0} %p1), lhs_contracting_dims={1}
}

%fused_bn (p0: bf16[8,32,32,64]) -> f32[64] {
  %p0 = bf16[8,32,32,64]{3,2,1,0} parameter(0)
  %convert.3 = f32[8,32,32,64]{3,2,1,0} convert(bf16[8,32,32,64]{3,2,1,0} %p0)
  ROOT %reduce.2 = f32[64]{0} reduce(f32[8,32,32,64]{3,2,1,0} %convert.3, f32[] %c), dimensions={0,1,2}
}

%fused_transpose (p0: bf16[8,64,32,32]) -> bf16[8,32,32,64] {
  %p0 = bf16[8,64,32,32]{3,2,1,0} parameter(0)
  ROOT %transpose.4 = bf16[8,32,32,64]{3,2,1,0} transpose(bf16[8,64,32,32]{3,2,1,0} %p0), dimensions={0,2,3,1}
}

ENTRY %main (x: bf16[8,32,32,64]) -> f32[64] {
  %x = bf16[8,32,32,64]{3,2,1,0} parameter(0)
  %custom-call.7 = (bf16[8,32,32,64]{3,2,1,0}, u8[0]{0}) custom-call(bf16[8,32,32,64]{3,2,1,0} %x), custom_call_target="__cudnn$convForward"
  %gemm_fusion.2 = bf16[64,64]{1,0} fusion(bf16[64,64]{1,0} %a, bf16[64,64]{1,0} %b), kind=kCustom, calls=%fused_dot
  %input_reduce_fusion.5 = f32[64]{0} fusion(bf16[8,32,32,64]{3,2,1,0} %x), kind=kInput, calls=%fused_bn
  %transpose_fusion.1 = bf16[8,32,32,64]{3,2,1,0} fusion(bf16[8,64,32,32]{3,2,1,0} %y), kind=kLoop, calls=%fused_transpose
  %all-reduce-start.3 = f32[64]{0} all-reduce-start(f32[64]{0} %input_reduce_fusion.5), replica_groups={}, to_apply=%add
  ROOT %all-reduce-done.3 = f32[64]{0} all-reduce-done(f32[64]{0} %all-reduce-start.3)
}
"""


def test_hlo_instructions_are_sorted_into_kinds():
    # GPU-style names (cuDNN custom calls, Triton gemm fusions, async collectives), written by hand:
    # the CPU profile above checks the plumbing, this checks what a GPU trace's ops are called.
    kinds = {n: profile.op_category(*v) for n, v in profile.hlo_instructions(_GPU_HLO).items()}
    assert kinds["custom-call.7"] == "convolution"
    assert kinds["gemm_fusion.2"] == "matmul"
    assert kinds["input_reduce_fusion.5"] == "reduction fusion"
    assert kinds["transpose_fusion.1"] == "layout (copy, transpose)"
    assert kinds["all-reduce-start.3"] == kinds["all-reduce-done.3"] == "collective"
