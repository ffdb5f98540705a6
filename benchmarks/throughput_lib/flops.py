"""Analytic training FLOP and parameter counts, and the peak bf16 rate of known devices (MFU).

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
A method's training FLOPs per example (composed in cases.py from what the method's variables hold: a
predictor where it has one, an EMA target where it keeps one): the networks that are trained cost
3 x forward, the EMA targets (never differentiated) 1 x forward:
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
