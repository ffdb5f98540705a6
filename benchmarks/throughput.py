"""Throughput of the whole pre-training step (on-device augmentation or masking, forward, backward,
optimizer update), and the achieved TFLOP/s and MFU from analytic FLOP counts.

Inputs of the stated size are already on the host (uint8 images, int32 tokens); each timed step ships its
batch to the devices (as training does), and the clock stops on the blocked result, after warm-up. Writes
benchmarks/results/throughput.md with the device, driver and library versions.

  python benchmarks/throughput.py                      # every case, on whatever devices exist
  python benchmarks/throughput.py --cases simclr_r18_cifar --steps 5 --batch-scale 0.0625   # a quick look
  python benchmarks/throughput.py --cases simclr_r18_fmnist --data-dir ../shared/data/fashion-mnist \
      --checkpoint-every 10        # + the real-data rate and the cost of asynchronous checkpoints
  python benchmarks/throughput.py --cases simclr_r18_cifar,simclr_r50_224 --profile runs/profiles
                                   # + jax.profiler traces, time by HLO instruction and kind

FLOP counts ("model FLOPs", as MFU is defined by Chowdhery et al. 2022, PaLM, App. B: the FLOPs the model
needs, not what an implementation spends on recomputation or masked-out work). Matmuls only (biases,
norms, softmax and the optimizer are < 1% here); a multiply-add is 2 FLOPs; training = 3 x forward (the
backward pass computes two products per forward matmul: input and weight gradients).
A pre-norm Transformer layer of width d, MLP width m, over T query tokens attending to S key tokens
(S = T for self-attention), forward:
    projections q, k, v, out   2 T 4 d^2      (cross-attention: q, out on T; k, v on S tokens)
    scores Q K^T and P V       2 * 2 T S d
    MLP                        2 T 2 d m
so with m = 4d one self-attention layer costs 24 T d^2 + 4 T^2 d forward, and a language model of L layers
and vocabulary V whose head produces logits at every position costs per token, for training,
    6 (12 L d^2 + d V) + 12 L T d
i.e. 6 x (matmul parameters) + the attention term, which is Narayanan et al. 2021 (Megatron-LM, Sec. 5.1)
72 B s l h^2 (1 + s / 6h + V / 12 l h) per batch of B sequences of s tokens, without recomputation. The full
T x T score matrix is counted for causal attention as well (PaLM's convention).
  BERT-base (12 x 768, seq 512), GPT-2 small (12 x 768, seq 1024): the formula above with the case's V.
  MAE ViT-B/16 at 224 (He et al. 2022): patch embedding of the kept patches (2 n p^2 C d), the encoder's
    12 layers over n + 1 = 50 tokens (49 kept of 196, plus the class token), the decoder's embedding
    (2 (n + 1) d d'), its 8 layers of width d' = 512 over N + 1 = 197 tokens, and its pixel head
    (2 N d' p^2 C); x 3 for training. The implementation embeds all 196 patches before dropping the
    masked ones (+0.4 GFLOP per image, ~0.8%); that work is not counted.
  ViT-S/16 (DINO, MoCo v3): the layer formula over n + 1 tokens plus the patch embedding (2 n p^2 C d);
    4.6 G multiply-adds at 224, as DeiT-S (Touvron et al. 2021, Table 1).
ResNets (our layout = torchvision's v1.5): every convolution, 2 k^2 C_in C_out per output position (the
stem, each block's convs, the 1x1 projection shortcuts); BN, ReLU, pooling not counted. ResNet-50 at 224:
8.18 GFLOP forward, i.e. torchvision's 4.09 G multiply-adds less its 1000-way classifier (2 M); ResNet-18
with the CIFAR stem at 32: 1.11 GFLOP.
Heads: 2 d_in d_out per Dense layer (SimCLR / BYOL / MoCo v3 projectors and predictors; DINO's head down to
its 256-d bottleneck and on to the K prototypes).
A method's training FLOPs per example: the networks that are trained cost 3 x forward, the EMA targets
(never differentiated) 1 x forward:
    SimCLR          3 V (backbone + projector)
    BYOL, MoCo v3   3 V (backbone + projector + predictor) + V (target backbone + projector)
    DINO            3 (G f_global + L f_local) + G f_global (the teacher sees the global crops only),
                    f = backbone at that crop size + head
with V = 2 views, G = 2 global crops, L local crops. Rows count images (views, or crops for DINO), so a
row's FLOPs per image is the per-example figure divided by V (or G + L). tests/test_throughput.py checks
each formula against a count of every matmul and convolution in the traced training step.
MFU = achieved FLOP/s / (devices x the device's peak dense bf16 FLOP/s, `PEAK_BF16_TFLOPS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssl_jax import augment, config_util, default_config, models, optim, parallel, train  # noqa: E402
from ssl_jax.methods import common, get_method  # noqa: E402

# ---------------------------------------------------------------- analytic FLOP and parameter counts


def layer_flops(tokens: int, width: int, mlp_dim: int, context: int | None = None) -> int:
    """Forward matmul FLOPs of one Transformer layer: `tokens` queries, self-attention over `tokens`
    keys (or, with `context`, cross-attention over `context` keys: k, v projected from them), GELU MLP."""
    if context is None:
        projections, keys = 2 * tokens * 4 * width * width, tokens
    else:
        projections, keys = 2 * (2 * tokens + 2 * context) * width * width, context
    return projections + 4 * tokens * keys * width + 4 * tokens * width * mlp_dim


def lm_train_flops_per_token(
    *, seq_len: int, width: int, layers: int, vocab_size: int, mlp_dim: int | None = None
) -> int:
    """Training FLOPs per token of an encoder-only or decoder-only LM with logits at every position:
    3 x (L layers + the d x V output matmul)."""
    mlp_dim = 4 * width if mlp_dim is None else mlp_dim
    per_sequence = layers * layer_flops(seq_len, width, mlp_dim) + 2 * seq_len * width * vocab_size
    return 3 * per_sequence // seq_len


def vit_forward_flops(
    *,
    image_size: int,
    patch_size: int,
    width: int,
    depth: int,
    channels: int = 3,
    mlp_dim: int | None = None,
) -> int:
    """Forward FLOPs of a ViT on every patch of one image plus the class token (MLP 4d by default)."""
    patches = (image_size // patch_size) ** 2
    embed = 2 * patches * patch_size**2 * channels * width
    mlp_dim = 4 * width if mlp_dim is None else mlp_dim
    return embed + depth * layer_flops(patches + 1, width, mlp_dim)


def conv_flops(out_size: int, kernel: int, c_in: int, c_out: int) -> int:
    """A square convolution producing an out_size x out_size map: 2 k^2 C_in C_out per position."""
    return 2 * out_size**2 * kernel**2 * c_in * c_out


def resnet_forward_flops(
    *,
    stage_sizes: tuple[int, ...],
    bottleneck: bool,
    stem: str = "imagenet",
    image_size: int = 224,
    channels: int = 3,
    width_multiplier: int = 1,
) -> int:
    """Forward FLOPs of a ResNet trunk up to global pooling (`ssl_jax.models.ResNet`): its convolutions.
    Every conv pads (k - 1) / 2, so a stride-s conv maps a side n to (n - 1) // s + 1."""
    width = 64 * width_multiplier
    if stem == "imagenet":  # 7x7/2 conv, then a 3x3/2 max-pool
        size = (image_size - 1) // 2 + 1
        flops = conv_flops(size, 7, channels, width)
        size = (size - 1) // 2 + 1
    else:  # "cifar": 3x3/1 conv
        size = image_size
        flops = conv_flops(size, 3, channels, width)
    c_in = width
    for i, blocks in enumerate(stage_sizes):
        filters = width * 2**i
        for j in range(blocks):
            stride = 2 if i > 0 and j == 0 else 1
            out = (size - 1) // stride + 1
            if bottleneck:  # 1x1, 3x3 (strided), 1x1 to 4x the width
                c_out = 4 * filters
                flops += conv_flops(size, 1, c_in, filters) + conv_flops(out, 3, filters, filters)
                flops += conv_flops(out, 1, filters, c_out)
            else:  # two 3x3, the first strided
                c_out = filters
                flops += conv_flops(out, 3, c_in, filters) + conv_flops(out, 3, filters, filters)
            if c_in != c_out or stride != 1:  # 1x1 projection shortcut
                flops += conv_flops(out, 1, c_in, c_out)
            c_in, size = c_out, out
    return flops


def mlp_flops(dims: list[int]) -> int:
    """Dense layers through widths dims[0] -> dims[1] -> ... (2 d_in d_out each)."""
    return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


def mae_train_flops_per_image(
    *,
    image_size: int = 224,
    patch_size: int = 16,
    channels: int = 3,
    width: int = 768,
    depth: int = 12,
    decoder_width: int = 512,
    decoder_depth: int = 8,
    mask_ratio: float = 0.75,
) -> int:
    """Training FLOPs per image of MAE (encoder on the kept patches, decoder on all); see the module
    docstring. Defaults: ViT-B/16 at 224 with the paper's 8 x 512 decoder."""
    patches = (image_size // patch_size) ** 2
    kept = int(patches * (1.0 - mask_ratio))
    pixels = patch_size**2 * channels
    forward = (
        2 * kept * pixels * width
        + depth * layer_flops(kept + 1, width, 4 * width)
        + 2 * (kept + 1) * width * decoder_width
        + decoder_depth * layer_flops(patches + 1, decoder_width, 4 * decoder_width)
        + 2 * patches * decoder_width * pixels
    )
    return 3 * forward


def _block_params(width: int, mlp_dim: int) -> int:
    """A Transformer layer: q, k, v, out with biases, two LayerNorms, the MLP with biases."""
    return 4 * (width * width + width) + 2 * 2 * width + 2 * width * mlp_dim + mlp_dim + width


def gpt2_param_count(
    *, vocab_size: int = 50257, seq_len: int = 1024, width: int = 768, layers: int = 12
) -> int:
    """GPT-2 (Radford et al. 2019): token and position embeddings, L layers, a final LayerNorm; the
    LM head is the tied token embedding (no parameters of its own)."""
    return (vocab_size + seq_len) * width + layers * _block_params(width, 4 * width) + 2 * width


def bert_param_count(
    *,
    vocab_size: int = 30522,
    seq_len: int = 512,
    width: int = 768,
    layers: int = 12,
    type_vocab_size: int = 2,
    pooler: bool = True,
) -> int:
    """BERT (Devlin et al. 2019): token, position and segment embeddings with their LayerNorm, L post-LN
    layers (the same parameters as pre-LN ones), the pooler; not the pre-training heads."""
    embeddings = (vocab_size + seq_len + type_vocab_size) * width + 2 * width
    return (
        embeddings
        + layers * _block_params(width, 4 * width)
        + (width * width + width if pooler else 0)
    )


def vit_param_count(
    *,
    image_size: int = 224,
    patch_size: int = 16,
    width: int = 768,
    depth: int = 12,
    channels: int = 3,
    num_classes: int = 0,
    learned_positions: bool = True,
) -> int:
    """ViT (Dosovitskiy et al. 2021): patch embedding, class token, positions (learned; MAE's sin-cos
    ones are fixed), L layers, final LayerNorm, and a classifier when num_classes > 0."""
    patches = (image_size // patch_size) ** 2
    embed = patch_size**2 * channels * width + width + width
    positions = (patches + 1) * width if learned_positions else 0
    head = num_classes * (width + 1)
    return embed + positions + depth * _block_params(width, 4 * width) + 2 * width + head


# Dense (no structured sparsity) bf16 tensor-core peak per device, TFLOP/s, by `device_kind` substring,
# the first match winning. Sources: NVIDIA's H100 and H200 Tensor Core GPU datasheets (1,979 TFLOP/s
# "with sparsity" for SXM, halved; H100 PCIe 1,513 and NVL 1,671 halved), NVIDIA's A100 datasheet (312),
# Google Cloud's TPU system-architecture pages (v4 275, v5e 197, v5p 459, v6e Trillium 918).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("A100", 312.0),
    ("TPU v4", 275.0),
    ("TPU v5 lite", 197.0),  # v5e
    ("TPU v5e", 197.0),
    ("TPU v5", 459.0),  # v5p
    ("TPU v6 lite", 918.0),  # v6e
    ("TPU v6e", 918.0),
)


def peak_tflops(device_kind: str) -> float | None:
    """The device's peak dense bf16 TFLOP/s, or None where unknown (CPUs: MFU is reported as n/a)."""
    for name, peak in PEAK_BF16_TFLOPS:
        if name.lower() in device_kind.lower():
            return peak
    return None


# ---------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: a config, how many examples a step takes, what a row counts, its FLOPs.

    config_fn(batch) -> ConfigDict; inputs(rng, batch, config) -> host arrays without example_ids;
    items_per_example: images (2 for SimCLR's two views, 1 for MAE) or tokens (the sequence length);
    flops_per_item(config) -> training FLOPs per counted item, or None where not counted.
    """

    name: str
    model: str
    input: str
    unit: str  # "images" or "tokens"
    examples: int  # examples per step at --batch-scale 1
    config_fn: Callable
    inputs: Callable
    items_per_example: Callable
    flops_per_item: Callable | None = None
    note: str = ""


def _simclr_config(encoder: str, stem: str, image_size: int, blur: float):
    def make(batch: int):
        config = default_config.get_config()
        config.method = "simclr"
        config.data.image_size = image_size
        config.data.channels = 3
        config.data.mean = augment.IMAGENET_MEAN
        config.data.std = augment.IMAGENET_STD
        config.model.encoder = encoder
        config.model.encoder_kwargs = {"stem": stem}
        config.model.dtype = "bfloat16"
        config.model.projector.hidden_dim, config.model.projector.output_dim = 2048, 128
        config.augment = {
            "preset": "simclr",
            "image_size": image_size,
            "channels": 3,
            "blur_prob": blur,
        }
        config.batch_size = batch
        return config

    return make


def _from_file(spec: str, **fields):
    """A config file's config with the batch size (and `fields`, dotted names) set."""

    def make(batch: int):
        config = config_util.load_config(os.path.join(ROOT, "configs", spec))
        config.batch_size = batch
        config_util.apply_overrides(config, [f"{k}={v}" for k, v in fields.items()])
        return config

    return make


def _images(size: int, channels: int = 3):
    def make(rng, batch, config):
        del config
        shape = (batch, size, size, channels)
        return {"image": rng.integers(0, 256, size=shape, dtype=np.uint8)}

    return make


def _tokens(rng, batch, config):
    """Random ids of the config's vocabulary above the special ids, full length (no padding)."""
    vocab, seq_len = int(config.data.vocab_size), int(config.data.seq_len)
    return {"tokens": rng.integers(8, vocab, size=(batch, seq_len), dtype=np.int32)}


def _seq_len(config) -> int:
    return int(config.data.seq_len)


def _mae_flops(config) -> int:
    encoder, dec = common.build_encoder(config, axis_name=None), config.model.decoder
    return mae_train_flops_per_image(
        image_size=config.augment.crop_size,
        patch_size=encoder.patch_size,
        width=encoder.hidden_dim,
        depth=encoder.depth,
        decoder_width=dec.hidden_dim,
        decoder_depth=dec.depth,
        mask_ratio=config.mae.mask_ratio,
    )


def _lm_flops(config) -> int:
    model = config.model
    return lm_train_flops_per_token(
        seq_len=int(config.data.seq_len),
        width=int(model.hidden_dim),
        layers=int(model.num_layers),
        vocab_size=int(config.data.vocab_size),
        mlp_dim=int(model.mlp_dim),
    )


def backbone_forward_flops(config, image_size: int) -> int:
    """Forward FLOPs of config.model.encoder on one image_size x image_size image (ResNets and ViTs;
    NotImplementedError for encoders without a formula)."""
    encoder = common.build_encoder(config, axis_name=None)
    channels = int(config.data.channels)
    if isinstance(encoder, models.ViT):
        return vit_forward_flops(
            image_size=image_size,
            patch_size=encoder.patch_size,
            width=encoder.hidden_dim,
            depth=encoder.depth,
            channels=channels,
            mlp_dim=int(encoder.hidden_dim * encoder.mlp_ratio),
        )
    if isinstance(encoder, models.ResNet):
        return resnet_forward_flops(
            stage_sizes=tuple(encoder.stage_sizes),
            bottleneck=encoder.block_cls.expansion == 4,
            stem=encoder.stem,
            image_size=image_size,
            channels=channels,
            width_multiplier=encoder.width_multiplier,
        )
    raise NotImplementedError(f"no FLOP formula for encoder {config.model.encoder!r}")


def _mlp_head_dims(head, in_dim: int) -> list[int]:
    """An `MLPHead`'s widths: num_layers Dense layers, hidden_dim wide but the last."""
    return (
        [in_dim] + [int(head.hidden_dim)] * (head.get("num_layers", 2) - 1) + [int(head.output_dim)]
    )


def _siamese_flops(config) -> int:
    """Per view: SimCLR (no predictor), or BYOL / MoCo v3 (predictor, and an EMA target network)."""
    model = config.model
    size = common.view_spec(config).crop_size
    feature_dim = common.build_encoder(config, axis_name=None).feature_dim
    online = backbone_forward_flops(config, size) + mlp_flops(
        _mlp_head_dims(model.projector, feature_dim)
    )
    if config.method == "simclr":
        return 3 * online
    target = online
    online += mlp_flops(_mlp_head_dims(model.predictor, int(model.projector.output_dim)))
    return 3 * online + target


def _dino_flops(config) -> int:
    """Per crop: the student on every crop (trained), the teacher on the global crops."""
    aug, head = config.augment, config.model.head
    feature_dim = common.build_encoder(config, axis_name=None).feature_dim
    dims = [feature_dim] + [int(head.hidden_dim)] * (head.get("num_layers", 3) - 1)
    head_flops = mlp_flops(dims + [int(head.bottleneck_dim), int(head.output_dim)])
    f_global = backbone_forward_flops(config, int(aug.global_size)) + head_flops
    f_local = backbone_forward_flops(config, int(aug.local_size)) + head_flops
    n_global, n_local = int(aug.num_global), int(aug.num_local)
    student = n_global * f_global + n_local * f_local
    return (3 * student + n_global * f_global) // (n_global + n_local)


def _crops(config) -> int:
    return int(config.augment.num_global) + int(config.augment.num_local)


# As in the issues: SimCLR's "batch 1024 images" is 512 examples x 2 views; images/s counts views.
CASES = {
    "simclr_r18_cifar": Case(
        "simclr_r18_cifar",
        "resnet18 (cifar stem)",
        "32x32x3 uint8",
        "images",
        512,
        _simclr_config("resnet18", "cifar", 32, 0.0),
        _images(32),
        lambda config: 2,
        _siamese_flops,
        note="two SimCLR views augmented on device, synchronized BN, NT-Xent, LARS",
    ),
    "simclr_r18_fmnist": Case(
        "simclr_r18_fmnist",
        "resnet18 (cifar stem)",
        "28x28x1 uint8",
        "images",
        512,
        _from_file("simclr_fashion_mnist.py"),
        _images(28, channels=1),
        lambda config: 2,
        _siamese_flops,
        note="configs/simclr_fashion_mnist.py's recipe (grayscale views, bf16, LARS); the case that "
        "`--data-dir` also feeds from the real Fashion-MNIST files through the training loader",
    ),
    "simclr_r50_224": Case(
        "simclr_r50_224",
        "resnet50 (imagenet stem)",
        "224x224x3 uint8",
        "images",
        128,
        _simclr_config("resnet50", "imagenet", 224, 0.5),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="two SimCLR views augmented on device (blur p 0.5), synchronized BN, NT-Xent, LARS",
    ),
    "byol_r50_224": Case(
        "byol_r50_224",
        "resnet50 (imagenet stem)",
        "224x224x3 uint8",
        "images",
        128,
        _from_file("byol_imagenet.py"),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="configs/byol_imagenet.py: the asymmetric view pair on device, online network + "
        "4096-256 projector and predictor, EMA target forward, synchronized BN, LARS",
    ),
    "moco_v3_vit_s16": Case(
        "moco_v3_vit_s16",
        "MoCo v3 ViT-S/16",
        "224x224x3 uint8",
        "images",
        256,
        _from_file("moco_v3_imagenet.py"),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="configs/moco_v3_imagenet.py: two views on device, ViT-S/16 + 3-layer projector + "
        "predictor, momentum network forward, InfoNCE over the gathered keys, AdamW",
    ),
    "dino_vit_s16": Case(
        "dino_vit_s16",
        "DINO ViT-S/16",
        "224x224x3 uint8",
        "images",
        128,
        _from_file("dino_imagenet.py"),
        _images(224),
        _crops,
        _dino_flops,
        note="configs/dino_imagenet.py: 2 global (224) + 8 local (96) crops on device, images/s counts "
        "every crop; student on all, teacher on the global ones, 65,536 prototypes, AdamW",
    ),
    "mae_vit_b16": Case(
        "mae_vit_b16",
        "MAE ViT-B/16 + 8x512 decoder",
        "224x224x3 uint8",
        "images",
        256,
        _from_file("mae_imagenet.py"),
        _images(224),
        lambda config: 1,
        _mae_flops,
        note="crop + flip and 75% masking on device, bf16, norm-pix MSE, AdamW",
    ),
    "bert_base_512": Case(
        "bert_base_512",
        "BERT-base 12x768",
        "512 tokens",
        "tokens",
        32,
        _from_file("bert_austen.py:base"),
        _tokens,
        _seq_len,
        _lm_flops,
        note="80/10/10 masking on device, bf16, tied MLM head over every position, AdamW",
    ),
    "gpt2_small_1024": Case(
        "gpt2_small_1024",
        "GPT-2 small 12x768",
        "1024 tokens",
        "tokens",
        16,
        _from_file("gpt_austen.py:base"),
        _tokens,
        _seq_len,
        _lm_flops,
        note="causal LM, bf16, tied head, AdamW",
    ),
}


def _timed_windows(step_fn, state, batch_at, *, start: int, steps: int):
    """(state, metrics, seconds per step): the best of three windows of `steps` steps dispatched back
    to back (transfers and compute overlap, as in training), each clocked to its blocked result."""
    windows = []
    for r in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            state, metrics = step_fn(state, batch_at(start + r * steps + i))
        jax.block_until_ready((state, metrics))
        windows.append((time.perf_counter() - t0) / steps)
    return state, metrics, float(min(windows))


def _real_data_loader(config, data_dir: str, examples: int, keys):
    """The training loader (`ssl_jax.data.BatchLoader`, shuffled, prefetching) over the real files."""
    from ssl_jax import data

    data_cfg = ml_collections.ConfigDict(config.data.to_dict())
    data_cfg.data_dir = data_dir
    source = data.get_source(data_cfg, "train")
    return source, data.BatchLoader(
        source,
        examples,
        seed=0,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        keys=keys,
    )


def _checkpoint_cost(step_fn, state, batch_at, method, *, start: int, steps: int, every: int):
    """Per-step wall times (each step blocked on) over `steps` steps with an asynchronous Orbax save
    (`ssl_jax.checkpoint.Checkpointer`, as training saves) after every `every`-th: (mean ms of the
    save step and the two after it, mean ms of the others)."""
    import tempfile

    from ssl_jax import checkpoint

    near, far = [], []
    with tempfile.TemporaryDirectory() as workdir:
        ckpt = checkpoint.Checkpointer(workdir, max_to_keep=2)
        last_save = None
        try:
            for i in range(steps):
                t0 = time.perf_counter()
                state, metrics = step_fn(state, batch_at(start + i))
                if (i + 1) % every == 0:
                    ckpt.save(i + 1, state, {"step": i + 1}, method.export_encoder(state))
                    last_save = i
                jax.block_until_ready((state, metrics))
                ms = 1e3 * (time.perf_counter() - t0)
                near_save = last_save is not None and i - last_save <= 2
                (near if near_save else far).append(ms)
        finally:
            ckpt.close()
    return state, float(np.mean(near)), float(np.mean(far))


# ---------------------------------------------------------------- profiles (jax.profiler)

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# What a fusion made of nothing else only moves: a layout change.
_DATA_MOVEMENT = {
    "parameter",
    "copy",
    "transpose",
    "bitcast",
    "reshape",
    "tuple",
    "get-tuple-element",
}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$")
_OPCODE = re.compile(r"\s([a-z][a-z0-9\-]*)\(")


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str, set[str]]]:
    """An optimized HLO module's instructions: name -> (opcode, detail, opcodes it runs). detail is a
    custom call's target or a fusion's kind; the opcodes run are those of the computations a fusion or
    call reaches (transitively), so a fusion can be told to hold a convolution, a dot or a reduction."""
    computations: dict[str, list[tuple[str, str, str, list[str]]]] = {}
    current = None
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if match is None:
            header = line.strip()
            if header.endswith("{"):
                current = header.split()[1 if header.startswith("ENTRY") else 0].lstrip("%")
                computations.setdefault(current, [])
            continue
        name, rest = match.groups()
        op = _OPCODE.search(" " + rest)
        if op is None or current is None:
            continue
        target = re.search(r'custom_call_target="([^"]+)"', rest)
        kind = re.search(r"kind=(k\w+)", rest)
        called = re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", rest)
        detail = target.group(1) if target else kind.group(1) if kind else ""
        computations[current].append((name, op.group(1), detail, called))

    def reached(names: list[str], seen: set[str]) -> set[str]:
        ops: set[str] = set()
        for comp in names:
            if comp in seen or comp not in computations:
                continue
            seen.add(comp)
            for _, opcode, detail, called in computations[comp]:
                ops.add(f"custom-call:{detail}" if opcode == "custom-call" else opcode)
                ops |= reached(called, seen)
        return ops

    return {
        name: (opcode, detail, reached(called, set()))
        for instrs in computations.values()
        for name, opcode, detail, called in instrs
    }


def op_category(opcode: str, detail: str, inner: set[str]) -> str:
    """What an executed HLO instruction is, in the terms the performance notes use."""
    base = opcode.removesuffix("-start").removesuffix("-done")
    if base in _COLLECTIVES:
        return "collective"
    ops = {opcode, *inner} | ({f"custom-call:{detail}"} if opcode == "custom-call" else set())
    calls = " ".join(o.lower() for o in ops if o.startswith("custom-call:"))
    if "convolution" in ops or "conv" in calls:
        return "convolution"
    if "dot" in ops or any(s in calls for s in ("gemm", "matmul", "cublas")):
        return "matmul"
    if opcode == "fusion":
        if inner <= _DATA_MOVEMENT:
            return "layout (copy, transpose)"
        return "reduction fusion" if "reduce" in ops or detail == "kInput" else "elementwise fusion"
    if base in ("copy", "transpose"):
        return "layout (copy, transpose)"
    return opcode


def profile_summary(trace_dir: str, hlo_text: str, steps: int, top: int = 8) -> dict:
    """Time per step by HLO instruction and by category, from the newest trace under trace_dir: the
    device's "XLA Ops" line on accelerators; on a CPU, the XLA worker threads (summed over threads)."""
    import glob

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    profile = jax.profiler.ProfileData.from_file(files[-1])
    devices = [p for p in profile.planes if p.name.startswith("/device:")]
    events = []
    if devices:
        source = f"{devices[0].name} XLA Ops"
        for plane in devices:
            lines = [line for line in plane.lines if line.name == "XLA Ops"] or list(plane.lines)
            events += [(e.name, e.duration_ns) for line in lines for e in line.events]
    else:
        source = "host XLA threads (summed over threads)"
        for plane in profile.planes:
            for line in plane.lines:
                if line.name.startswith("tf_XLA"):
                    events += [
                        (e.name, e.duration_ns)
                        for e in line.events
                        if not e.name.startswith("ThunkExecutor")
                    ]
    instructions = hlo_instructions(hlo_text)
    by_op: dict[str, float] = {}
    for name, ns in events:
        by_op[name] = by_op.get(name, 0.0) + ns
    total = sum(by_op.values()) or 1.0
    by_category: dict[str, float] = {}
    ops = []
    for name, ns in sorted(by_op.items(), key=lambda kv: -kv[1]):
        known = instructions.get(name)
        category = op_category(*known) if known else "other (not an HLO instruction)"
        by_category[category] = by_category.get(category, 0.0) + ns
        ops.append((name, category, ns / 1e6 / steps, ns / total))
    return {
        "trace": os.path.dirname(files[-1]),
        "source": source,
        "ms_per_step": total / 1e6 / steps,
        "categories": sorted(
            ((c, ns / total) for c, ns in by_category.items()), key=lambda x: -x[1]
        ),
        "top": ops[:top],
    }


def _profile(step_fn, state, batch_at, *, start: int, steps: int, trace_dir: str):
    """`steps` steps under jax.profiler.trace (TensorBoard / Perfetto / XProf format), each annotated as
    a training step; the optimized HLO written beside the trace and used to name what ran."""
    os.makedirs(trace_dir, exist_ok=True)
    hlo_text = step_fn.lower(state, batch_at(start)).compile().as_text()
    with open(os.path.join(trace_dir, "step.hlo.txt"), "w") as f:
        f.write(hlo_text)
    with jax.profiler.trace(trace_dir):
        for i in range(steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=i):
                state, metrics = step_fn(state, batch_at(start + i))
        jax.block_until_ready((state, metrics))
    return state, profile_summary(trace_dir, hlo_text, steps)


def run_case(
    case: Case,
    *,
    examples: int,
    steps: int,
    warmup: int,
    mesh,
    data_dir: str = "",
    checkpoint_every: int = 0,
    profile_dir: str = "",
    profile_steps: int = 5,
) -> dict:
    """Times `case`. data_dir: also time the step fed by the training loader over the real files
    (cases on Fashion-MNIST); checkpoint_every: also time steps around asynchronous saves;
    profile_dir: also trace `profile_steps` steps into profile_dir/<case> and summarize them."""
    config = case.config_fn(examples)
    method = get_method(config, num_steps=10_000, steps_per_epoch=100)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 100, 10_000), 10_000)
    rng = np.random.default_rng(0)
    # A few distinct host batches, rotated, so no step reuses device buffers of the previous one.
    host = [case.inputs(rng, examples, config) for _ in range(3)]
    example_shape = host[0][method.batch_keys[0]].shape[1:]
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), example_shape)
    state = parallel.replicate(state, mesh)
    step_fn = train.make_train_step(method, tx, schedule, mesh)

    def batch_at(i):
        ids = np.arange(i * examples, (i + 1) * examples, dtype=np.int32)
        return parallel.shard_batch({**host[i % 3], "example_ids": ids}, mesh)

    t0 = time.perf_counter()
    state, metrics = step_fn(state, batch_at(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for i in range(1, warmup):
        state, metrics = step_fn(state, batch_at(i))
    jax.block_until_ready((state, metrics))
    state, metrics, step_s = _timed_windows(step_fn, state, batch_at, start=warmup, steps=steps)
    items = examples * case.items_per_example(config)
    extra = {}
    if data_dir and config.data.name == "fashion_mnist":
        keys = method.batch_keys
        source, loader = _real_data_loader(config, data_dir, examples, keys)
        if tuple(source.get(np.zeros(1, np.int64))[keys[0]].shape[1:]) != tuple(example_shape):
            raise SystemExit(
                f"{case.name}: {source.name} examples do not have shape {example_shape}"
            )
        try:

            def real_batch(i):
                del i
                batch = next(loader)
                return parallel.shard_batch({k: batch[k] for k in (*keys, "example_ids")}, mesh)

            for i in range(warmup):  # the loader's prefetch thread fills up
                state, metrics = step_fn(state, real_batch(i))
            jax.block_until_ready((state, metrics))
            state, metrics, real_s = _timed_windows(
                step_fn, state, real_batch, start=0, steps=steps
            )
            # The loader alone, no step: how fast this host can feed the devices at all. The
            # batches already prefetched are taken first, so the clock sees the producer's rate.
            for i in range(2):
                real_batch(i)
            t0 = time.perf_counter()
            for i in range(3 * steps):
                jax.block_until_ready(real_batch(i))
            loader_s = (time.perf_counter() - t0) / (3 * steps)
        finally:
            loader.close()
        extra["real_data"] = source.name
        extra["real_vs_synthetic"] = step_s / real_s
        extra["real_items_per_s"] = items / real_s
        extra["loader_items_per_s"] = items / loader_s
    if checkpoint_every:
        if checkpoint_every < 4:
            raise SystemExit("--checkpoint-every must be >= 4: 3 steps per save count as near it")
        timed = max(3 * steps, 3 * checkpoint_every)
        state, near_ms, far_ms = _checkpoint_cost(
            step_fn, state, batch_at, method, start=0, steps=timed, every=checkpoint_every
        )
        extra.update(checkpoint_every=checkpoint_every, near_save_ms=near_ms, other_ms=far_ms)
    if profile_dir:
        state, extra["profile"] = _profile(
            step_fn,
            state,
            batch_at,
            start=0,
            steps=profile_steps,
            trace_dir=os.path.join(profile_dir, case.name),
        )
    row = {
        "case": case.name,
        "model": case.model,
        "input": f"{config.data.seq_len} tokens" if case.unit == "tokens" else case.input,
        "unit": case.unit,
        "batch": items,
        "examples": examples,
        "items_per_s": items / step_s,
        "step_ms": 1e3 * step_s,
        "compile_s": compile_s,
        "loss": float(metrics["loss"]),
        "tflops": None,
        "mfu": None,
        **extra,
    }
    try:
        flops = None if case.flops_per_item is None else case.flops_per_item(config)
    except NotImplementedError:  # e.g. --set model.encoder=small_cnn: no formula, MFU n/a
        flops = None
    if flops is not None:
        row["flops_per_item"] = flops
        row["tflops"] = row["flops_per_item"] * items / step_s / 1e12
        peak = peak_tflops(jax.devices()[0].device_kind)
        if peak is not None:
            row["mfu"] = row["tflops"] / (peak * jax.device_count())
    return row


def environment() -> dict:
    dev = jax.devices()[0]
    env = {
        "device": f"{jax.device_count()} x {dev.device_kind} ({dev.platform})",
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    try:
        import flax
        import optax

        env["flax"], env["optax"] = flax.__version__, optax.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            env["driver"] = out.stdout.strip()
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    return env


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


def to_markdown(rows: list[dict], env: dict, command: str) -> str:
    peak = peak_tflops(jax.devices()[0].device_kind)
    lines = [
        "# Pre-training step throughput",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "Peak used for MFU: "
        + (f"{peak:g} dense bf16 TFLOP/s per device" if peak else "unknown device (MFU n/a)"),
        "",
    ]
    main = []
    for r in rows:
        flops = f"{r['flops_per_item'] / 1e9:.3f}" if r.get("flops_per_item") else "n/a"
        tflops = f"{r['tflops']:.2f}" if r["tflops"] is not None else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        main.append(
            [
                r["case"],
                r["model"],
                r["input"],
                f"{r['batch']} {r['unit']}",
                f"{_rate(r['items_per_s'])} {r['unit']}/s",
                f"{r['step_ms']:.2f}",
                f"{r['compile_s']:.1f}",
                flops,
                tflops,
                mfu,
            ]
        )
    lines += _table(
        ["case", "model", "input", "batch", "throughput", "step (ms)", "compile (s)"]
        + ["train GFLOP / item", "TFLOP/s", "MFU"],
        main,
    )
    real = [r for r in rows if "real_data" in r]
    if real:
        lines += [
            "",
            "Real data: the same step fed by the training loader (`ssl_jax.data.BatchLoader`: "
            "shuffled reads of the files, a prefetch thread) instead of batches already in memory; "
            "and the loader alone, delivering batches to the devices with no step running (what this "
            "host can feed at most, counted in the same units).",
            "",
        ]
        lines += _table(
            ["case", "data", "synthetic", "real data", "real / synthetic", "loader alone"],
            [
                [
                    r["case"],
                    r["real_data"],
                    f"{_rate(r['items_per_s'])} {r['unit']}/s",
                    f"{_rate(r['real_items_per_s'])} {r['unit']}/s",
                    f"{100 * r['real_vs_synthetic']:.1f}%",
                    f"{_rate(r['loader_items_per_s'])} {r['unit']}/s",
                ]
                for r in real
            ],
        )
    saved = [r for r in rows if "checkpoint_every" in r]
    if saved:
        lines += [
            "",
            "Checkpointing: each step blocked on and clocked alone, an asynchronous Orbax save of the "
            "whole state after every N-th step; the save step and the two after it against the rest.",
            "",
        ]
        lines += _table(
            ["case", "save every", "near a save (ms)", "other steps (ms)", "slowdown"],
            [
                [
                    r["case"],
                    f"{r['checkpoint_every']} steps",
                    f"{r['near_save_ms']:.2f}",
                    f"{r['other_ms']:.2f}",
                    f"{100 * (r['near_save_ms'] / r['other_ms'] - 1):+.1f}%",
                ]
                for r in saved
            ],
        )
    for r in (r for r in rows if "profile" in r):
        prof = r["profile"]
        lines += [
            "",
            f"Profile of {r['case']} (jax.profiler, {prof['source']}): {prof['ms_per_step']:.2f} ms "
            f"of op time per step; trace and optimized HLO in `{prof['trace']}`. By kind: "
            + ", ".join(f"{c} {100 * share:.1f}%" for c, share in prof["categories"]),
            "",
        ]
        lines += _table(
            ["HLO instruction", "kind", "ms / step", "share"],
            [[n, c, f"{ms:.3f}", f"{100 * sh:.1f}%"] for n, c, ms, sh in prof["top"]],
        )
    lines.append("")
    for r in rows:
        lines.append(f"- {r['case']}: {CASES[r['case']].note}.")
    lines.append(
        "- Images/s counts augmented views (two per example for SimCLR, BYOL, MoCo v3; every crop "
        "for DINO); tokens/s counts input tokens. FLOPs are analytic model FLOPs (formulas in "
        "benchmarks/throughput.py's docstring: 3 x forward for trained networks, 1 x for EMA targets)."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-scale", type=float, default=1.0, help="scale every case's batch")
    parser.add_argument(
        "--batch", type=int, default=0, help="override every case's examples per step"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="config override for every case, e.g. --set model.dtype=float32 (repeatable)",
    )
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "benchmarks", "results", "throughput.md")
    )
    parser.add_argument(
        "--min-items-per-s", type=float, default=0.0, help="fail below this images/s or tokens/s"
    )
    parser.add_argument(
        "--data-dir",
        default="",
        help="Fashion-MNIST IDX files: cases on Fashion-MNIST are also timed fed from them",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="also time steps around asynchronous checkpoint saves made every N steps",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="also trace steps of each case with jax.profiler into DIR/<case> (TensorBoard/XProf)",
    )
    parser.add_argument("--profile-steps", type=int, default=5)
    args = parser.parse_args(argv)
    mesh = parallel.make_mesh()
    env = environment()
    print("environment:", env, flush=True)
    rows = []
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; valid: {', '.join(CASES)}")
        case = CASES[name]
        if args.set:
            make = case.config_fn

            def with_overrides(batch, make=make):
                config = make(batch)
                config_util.apply_overrides(config, args.set)
                return config

            case = dataclasses.replace(case, config_fn=with_overrides)
        n = parallel.num_shards(mesh)
        examples = args.batch or max(n, int(case.examples * args.batch_scale) // n * n)
        row = run_case(
            case,
            examples=examples,
            steps=args.steps,
            warmup=args.warmup,
            mesh=mesh,
            data_dir=args.data_dir,
            checkpoint_every=args.checkpoint_every,
            profile_dir=args.profile,
            profile_steps=args.profile_steps,
        )
        print(row, flush=True)
        rows.append(row)
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    text = to_markdown(rows, env, command)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
    slow = [r for r in rows if r["items_per_s"] < args.min_items_per_s]
    if slow:
        print(f"FAIL: below {args.min_items_per_s} items/s: {[r['case'] for r in slow]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
