"""The recipes of configs/ by method family, shared by a method's configs on every dataset.

Each recipe function takes a dataset base (configs/_datasets.py) and sets the method's encoder, heads,
method section, augmentation and optimizer; its defaults are the small-image recipe (solo-learn's
CIFAR-10 settings, also used on Fashion-MNIST) and a config changes only what its dataset's recipe
changes. The pieces (`mlp`, `views`, `lars`, `sgd`, `adamw`) are the ones the configs build heads,
augmentations and optimizers from.

Not a config itself (no get_config): a config imports it with
`config_util.import_sibling(__file__, "_families")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

# (model.encoder, model.encoder_kwargs): ResNets with the CIFAR stem for 28-32 px images, with the
# ImageNet stem at 224 px (zero-initialized last BN of each block: Barlow Twins', VICReg's recipe).
RESNET18 = ("resnet18", {"stem": "cifar"})
RESNET50 = ("resnet50", {"stem": "imagenet"})
RESNET50_ZERO_INIT = ("resnet50", {"stem": "imagenet", "zero_init_residual": True})
# Colour jitter 0.4/0.4/0.4/0.1 (MoCo v2's "aug+", SimSiam); the strength-1.0 one is 0.8/0.8/0.8/0.2.
JITTER_04 = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
JITTER_08 = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2}


def mlp(
    hidden_dim: int, output_dim: int, num_layers: int = 2, *, last_bn: bool = False
) -> ml_collections.ConfigDict:
    """A projector / predictor: `num_layers` dense layers, BN + ReLU after each hidden one."""
    return ml_collections.ConfigDict(
        dict(
            hidden_dim=hidden_dim,
            output_dim=output_dim,
            num_layers=num_layers,
            use_bn=True,
            last_bn=last_bn,
        )
    )


def set_encoder(
    config: ml_collections.ConfigDict, encoder: tuple[str, Mapping], dtype: str = "bfloat16"
) -> None:
    config.model.encoder, config.model.encoder_kwargs = encoder
    config.model.dtype = dtype


def views(config: ml_collections.ConfigDict, preset: str, **fields: Any) -> dict:
    """A ViewSpec preset at the dataset's image size and channels, plus field overrides (None: left at
    the preset's)."""
    size = {"image_size": config.data.image_size, "channels": config.data.channels}
    return {"preset": preset, **size, **{k: v for k, v in fields.items() if v is not None}}


def lars(
    learning_rate: float,
    weight_decay: float,
    trust_coefficient: float | None = 0.02,
    warmup_epochs: float = 10.0,
    **more: Any,
) -> dict:
    """Fields of config.optim for LARS at `learning_rate` x batch / 256 (trust None: optim's default)."""
    trust = {} if trust_coefficient is None else {"trust_coefficient": trust_coefficient}
    fields = dict(name="lars", learning_rate=learning_rate, lr_scaling="linear")
    return {**fields, "weight_decay": weight_decay, **trust, "warmup_epochs": warmup_epochs, **more}


def sgd(learning_rate: float, weight_decay: float, warmup_epochs: float = 10.0) -> dict:
    """Fields of config.optim for SGD, momentum 0.9, at `learning_rate` x batch / 256."""
    fields = dict(name="sgd", learning_rate=learning_rate, lr_scaling="linear")
    return {**fields, "weight_decay": weight_decay, "momentum": 0.9, "warmup_epochs": warmup_epochs}


def optimizer(name: str, **fields: Any) -> ml_collections.ConfigDict:
    """A whole config.optim (in place of default_config's): `name` and exactly these fields."""
    return ml_collections.ConfigDict({"name": name, **fields})


def adamw(learning_rate: float, weight_decay: float, warmup_epochs: float, **more: Any):
    """config.optim for AdamW at `learning_rate` x batch / 256, betas 0.9 / 0.999, cosine to 0."""
    return optimizer(
        "adamw",
        learning_rate=learning_rate,
        lr_scaling="linear",
        weight_decay=weight_decay,
        **{"b1": 0.9, "b2": 0.999, **more, "warmup_epochs": warmup_epochs, "end_lr": 0.0},
    )


def simclr(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    projector: tuple[int, int],
    temperature: float,
    augment: Mapping | None = None,
    optim: Mapping,
) -> ml_collections.ConfigDict:
    """SimCLR: default_config's 2-layer projector resized and NT-Xent at `temperature`; SimCLR's views
    with `augment`'s changes (None: default_config's), LARS."""
    set_encoder(config, encoder)
    config.model.projector.update(hidden_dim=projector[0], output_dim=projector[1])
    config.simclr.temperature = temperature
    if augment is not None:
        config.augment = views(config, "simclr", **augment)
    config.optim.update(optim)
    return config


def byol(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    tau_base: float = 0.99,
    blur_prob: float | None = 0.0,
    optim: Mapping | None = None,
) -> ml_collections.ConfigDict:
    """BYOL: projector and predictor 4096-256, tau from tau_base to 1, BYOL's asymmetric view pair
    (small images: no blur, as solo-learn on CIFAR); optim None: LARS, lr 1.0, weight decay 1e-5."""
    set_encoder(config, encoder)
    config.model.projector = mlp(4096, 256)
    config.model.predictor = mlp(4096, 256)
    config.byol = ml_collections.ConfigDict({"tau_base": tau_base})
    config.augment = views(config, "byol", blur_prob=blur_prob)
    config.optim.update(optim or lars(1.0, 1e-5))
    return config


def barlow_twins(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    width: int = 2048,
    scale_loss: float = 0.1,
    blur_prob: float | None = 0.0,
    optim: Mapping | None = None,
) -> ml_collections.ConfigDict:
    """Barlow Twins: projector width-width-width, lambda 0.0051, BYOL's view pair; optim None: LARS,
    lr 0.3, weight decay 1e-4."""
    set_encoder(config, encoder)
    config.model.projector = mlp(width, width, 3)
    config.barlow_twins = ml_collections.ConfigDict(
        {"lambda_offdiag": 0.0051, "scale_loss": scale_loss}
    )
    config.augment = views(config, "byol", blur_prob=blur_prob)
    config.optim.update(optim or lars(0.3, 1e-4))
    return config


def vicreg(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    width: int = 2048,
    symmetric_views: bool = True,
    optim: Mapping | None = None,
) -> ml_collections.ConfigDict:
    """VICReg: expander width-width-width, coefficients 25 / 25 / 1; solo-learn's small-image views are
    one symmetric pipeline (the "byol" preset with both views overridden), ImageNet's BYOL's pair;
    optim None: LARS, lr 0.3, weight decay 1e-4."""
    set_encoder(config, encoder)
    config.model.projector = mlp(width, width, 3)  # the paper's "expander"
    config.vicreg = ml_collections.ConfigDict(
        {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0}
    )
    symmetric = {"crop_scale": (0.2, 1.0), "blur_prob": 0.0, "solarize_prob": 0.1}
    config.augment = views(config, "byol", **(symmetric if symmetric_views else {}))
    config.optim.update(optim or lars(0.3, 1e-4))
    return config


def simsiam(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    augment: Mapping | None = None,
    optim: Mapping | None = None,
) -> ml_collections.ConfigDict:
    """SimSiam: projector 2048-2048-2048 ending in BN, predictor 2048-512-2048, SimCLR's views with
    `augment`'s changes (None: jitter 0.4/0.4/0.4/0.1, no blur), SGD (None: lr 0.5, weight decay
    1e-5)."""
    set_encoder(config, encoder)
    config.model.projector = mlp(2048, 2048, 3, last_bn=True)
    config.model.predictor = mlp(512, 2048)
    config.augment = views(config, "simclr", **(augment or {**JITTER_04, "blur_prob": 0.0}))
    config.optim.update(optim or sgd(0.5, 1e-5))
    return config


def moco_v2(
    config: ml_collections.ConfigDict,
    *,
    encoder=RESNET18,
    output_dim: int,
    moco: Mapping,
    augment: Mapping,
    optim: Mapping,
) -> ml_collections.ConfigDict:
    """MoCo v2: MLP head 2048-output_dim without BN, InfoNCE at temperature 0.2 against a queue,
    SimCLR's views with `augment`'s crop_scale, "aug+" jitter, then `augment`'s other fields.
    Query-encoder BN per device when the key encoder shuffles BN (as MoCo), synchronized when it
    syncs."""
    del config["simclr"]
    set_encoder(config, encoder)
    config.model.sync_batch_norm = moco["key_bn"] == "sync"
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": output_dim, "num_layers": 2, "use_bn": False}
    )
    config.moco = ml_collections.ConfigDict({"temperature": 0.2, **moco})
    rest = {k: v for k, v in augment.items() if k != "crop_scale"}  # blur, solarization, ...
    config.augment = views(config, "simclr", crop_scale=augment["crop_scale"], **JITTER_04, **rest)
    config.optim.update(optim)
    return config


def moco_v3(
    config: ml_collections.ConfigDict, *, encoder, augment: Mapping, optim
) -> ml_collections.ConfigDict:
    """MoCo v3: projector 4096-4096-256 ending in BN, predictor 4096-256, all BN synchronized,
    temperature 0.2, momentum 0.99 -> 1 (cosine), BYOL's view pair. `optim`: optim's fields (a dict)
    or a whole optim (a ConfigDict)."""
    del config["simclr"]
    set_encoder(config, encoder)
    config.model.sync_batch_norm = True
    config.model.projector = mlp(4096, 256, 3, last_bn=True)
    config.model.predictor = mlp(4096, 256)
    config.moco = ml_collections.ConfigDict(
        {"temperature": 0.2, "momentum": 0.99, "final_momentum": 1.0}
    )
    config.augment = views(config, "byol", **augment)
    if isinstance(optim, ml_collections.ConfigDict):
        config.optim = optim
    else:
        config.optim.update(optim)
    return config


def moco_v3_adamw(warmup_epochs: float) -> ml_collections.ConfigDict:
    """MoCo v3's ViT optimizer: AdamW, lr 1.5e-4 x batch / 256, weight decay 0.1."""
    return adamw(1.5e-4, 0.1, warmup_epochs)


def dino_lars(warmup_epochs: float = 10.0) -> ml_collections.ConfigDict:
    """solo-learn's DINO optimizer for BN backbones: LARS, lr 0.3 x batch / 256, weight decay 1e-6."""
    return optimizer(
        "lars",
        learning_rate=0.3,
        lr_scaling="linear",
        weight_decay=1e-6,
        trust_coefficient=0.02,
        momentum=0.9,
        warmup_epochs=warmup_epochs,
        end_lr=0.0,
    )


def dino(
    config: ml_collections.ConfigDict,
    *,
    encoder: tuple[str, Mapping],
    prototypes: int,
    norm_last_layer: bool,
    dino: Mapping,
    crops: Mapping,
    optim: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
    """DINO: head 2048-256 to `prototypes`, student temperature 0.1, centre momentum 0.9, last layer
    frozen for the first epoch; `dino` the teacher's schedule, `crops` the multi-crop counts and sizes
    then ssl_jax.augment.dino_view_specs's keywords."""
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    set_encoder(config, encoder)
    config.model.head = ml_collections.ConfigDict(
        {
            "hidden_dim": 2048,
            "bottleneck_dim": 256,
            "output_dim": prototypes,
            "num_layers": 3,
            "use_bn": False,
            "norm_last_layer": norm_last_layer,
        }
    )
    config.dino = ml_collections.ConfigDict(
        {
            "student_temp": 0.1,
            "teacher_temp": 0.07,
            "warmup_teacher_temp": 0.04,
            "warmup_teacher_temp_epochs": dino["warmup_teacher_temp_epochs"],
            "teacher_momentum": dino["teacher_momentum"],
            "center_momentum": 0.9,
            "freeze_last_layer_epochs": 1.0,
        }
    )
    config.augment = ml_collections.ConfigDict(dict(crops))
    config.optim = optim
    return config


def dino_adamw(**more: Any) -> ml_collections.ConfigDict:
    """DINO's ViT optimizer: AdamW, lr 0.0005 x batch / 256, weight decay 0.04 (fixed: ssl_jax.optim
    takes a float, DINO raises it to 0.4), cosine to 1e-6, global-norm clipping at 3."""
    fields = dict(learning_rate=0.0005, lr_scaling="linear", weight_decay=0.04)
    return optimizer("adamw", **fields, **more, warmup_epochs=10.0, end_lr=1e-6, grad_clip_norm=3.0)


def mae(
    config: ml_collections.ConfigDict,
    *,
    encoder: tuple[str, Mapping],
    decoder: tuple[int, int, int],
    warmup_epochs: float,
    **adamw_more: Any,
) -> ml_collections.ConfigDict:
    """MAE: 75% of the patches masked, loss on per-patch normalized pixels, a light decoder (width,
    depth, heads), random resized crop (scale 0.2-1) and flip only, AdamW with betas 0.9 / 0.95."""
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    set_encoder(config, encoder)
    width, depth, heads = decoder
    config.model.decoder = ml_collections.ConfigDict(
        {"hidden_dim": width, "depth": depth, "num_heads": heads, "mlp_ratio": 4.0}
    )
    config.mae = ml_collections.ConfigDict({"mask_ratio": 0.75, "norm_pix_loss": True})
    config.augment = crop_and_flip(config.data.image_size, scale=(0.2, 1.0))
    config.optim = adamw(1.5e-4, 0.05, warmup_epochs, **{"b2": 0.95, **adamw_more})
    return config


def crop_and_flip(size: int, scale: tuple[float, float]) -> ml_collections.ConfigDict:
    """One view: random resized crop and flip, nothing photometric (ViewSpec fields)."""
    return ml_collections.ConfigDict(
        {
            "preset": None,
            "crop_size": size,
            "crop_scale": scale,
            "flip_prob": 0.5,
            "jitter_prob": 0.0,
        }
    )


def supervised(
    config: ml_collections.ConfigDict, *, label_smoothing: float, crop_scale, weight_decay, warmup
) -> ml_collections.ConfigDict:
    """Supervised pre-training: cross-entropy on the labels, random resized crop + flip, SGD with
    Nesterov momentum 0.9 at 0.1 x batch / 256, cosine."""
    config.supervised = ml_collections.ConfigDict(
        {"transfer_layer": 0, "label_smoothing": label_smoothing}
    )
    config.augment = crop_and_flip(config.data.image_size, scale=crop_scale)
    config.optim = optimizer(
        "sgd",
        learning_rate=0.1,
        lr_scaling="linear",  # 0.1 x batch / 256
        momentum=0.9,
        nesterov=True,
        weight_decay=weight_decay,
        warmup_epochs=warmup,
        end_lr=0.0,
    )
    return config


def head_sizes(hidden_dim: int, bottleneck_dim: int, output_dim: int) -> dict:
    """A DINO head's sizes, as the fields a variant sets."""
    return {
        "model.head.hidden_dim": hidden_dim,
        "model.head.bottleneck_dim": bottleneck_dim,
        "model.head.output_dim": output_dim,
    }


def decoder_sizes(width: int, depth: int, heads: int) -> dict:
    """An MAE decoder's sizes, as the fields a variant sets."""
    return {
        "model.decoder.hidden_dim": width,
        "model.decoder.depth": depth,
        "model.decoder.num_heads": heads,
    }


def clip(
    config: ml_collections.ConfigDict,
    *,
    width: int,
    depth: int,
    num_heads: int = 4,
    embed_dim: int,
    warmup_epochs: float,
) -> ml_collections.ConfigDict:
    """CLIP: a causal text Transformer (vocab_size 0: the tokenizer's) beside the image encoder, both
    projected to `embed_dim`; learnable logit scale from 1/0.07 capped at 100; a random crop of the
    (resized) image as the only augmentation (no flip, no colour); AdamW as the CLIP paper trains
    (lr 5e-4, betas 0.9/0.98, eps 1e-6, weight decay 0.2 on matrices), warm-up then cosine."""
    config.model.text = ml_collections.ConfigDict(
        {"vocab_size": 0, "width": width, "depth": depth, "num_heads": num_heads, "mlp_ratio": 4.0}
    )
    config.clip = ml_collections.ConfigDict(
        {"embed_dim": embed_dim, "init_temperature": 0.07, "max_logit_scale": 100.0}
    )
    config.augment = ml_collections.ConfigDict(
        {
            "crop_size": config.data.image_size,
            "crop_scale": (0.5, 1.0),
            "flip_prob": 0.0,
            "jitter_prob": 0.0,
        }
    )
    config.optim.update(name="adamw", learning_rate=5e-4, lr_scaling="none")
    config.optim.update(b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.2, warmup_epochs=warmup_epochs)
    return config


def text_tower(width: int, depth: int, num_heads: int) -> dict:
    """A CLIP text tower's sizes, as the fields a variant sets."""
    return {"model.text.width": width, "model.text.depth": depth, "model.text.num_heads": num_heads}


def cpc_adamw(warmup_steps: int) -> ml_collections.ConfigDict:
    """CPC's optimizer: AdamW at a fixed lr 2e-3, no weight decay, `warmup_steps` then cosine."""
    return optimizer(
        "adamw",
        learning_rate=2e-3,
        lr_scaling="none",
        weight_decay=0.0,
        warmup_steps=warmup_steps,
        end_lr=0.0,
    )


def cpc_smoke(*, widths: tuple[int, ...], strides: tuple[int, ...], dim: int) -> dict:
    """The fields of a tiny CPC (z and context of `dim`, 2 predictions), for the smoke variants."""
    return {
        "cpc.widths": widths,
        "cpc.strides": strides,
        "cpc.z_dim": dim,
        "cpc.context_dim": dim,
        "cpc.num_predictions": 2,
    }


def colorization(
    config: ml_collections.ConfigDict, *, output_size: int, head_width: int, prior_examples: int
) -> ml_collections.ConfigDict:
    """Colorization (Zhang et al. 2016): ab bins of a grid of 10, targets soft-encoded over 5
    neighbours with sigma 5, class rebalancing (lambda 0.5, sigma 5) from `prior_examples` training
    images' ab histogram, annealed-mean decoding at T = 0.38, flips."""
    config.colorization = ml_collections.ConfigDict(
        {
            "grid_size": 10.0,
            "output_size": output_size,
            "head_width": head_width,
            "soft_neighbours": 5,
            "soft_sigma": 5.0,
            "rebalance": True,
            "rebalance_mix": 0.5,
            "rebalance_sigma": 5.0,
            "prior_examples": prior_examples,
            "flip": True,
            "temperature": 0.38,
        }
    )
    return config


def colorization_smoke() -> dict:
    """The fields of a tiny colorization for the smoke variants: a grid of 20 (76 bins), an 8x8
    output, 64 examples for the prior, kNN with k = 5."""
    return {
        "colorization.grid_size": 20.0,
        "colorization.output_size": 8,
        "colorization.head_width": 8,
        "colorization.prior_examples": 64,
        "eval.knn_k": 5,
    }


def future_prediction(
    config: ml_collections.ConfigDict, *, context: int, warmup_epochs: float
) -> ml_collections.ConfigDict:
    """Future prediction in feature space: f, a 2-layer MLP (residual: phi(x_t) + g(.), g starting at
    0), regresses phi(x_{t+1}) from the last `context` frames' phi; phi frozen, the small CNN at
    random initialization unless future.phi_workdir names a run; frames used as they are; AdamW."""
    config.future = ml_collections.ConfigDict(
        {
            "phi_workdir": "",  # "": config.model.encoder at random initialization, frozen
            "phi_step": 0,  # 0: the latest checkpoint
            "phi_image_size": 0,  # 0: frames at their own size (fine for convolutional phi)
            "train_phi": False,  # True: the degenerate variant (collapses)
            "context": context,  # k past frames in
            "offset": 1,  # predict phi(x_{t + offset})
            "residual": True,  # f = phi(x_t) + g(.), g starting at 0 (FuturePrediction)
        }
    )
    # phi's architecture when no phi_workdir is given (with one, the workdir's own config decides).
    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "num_layers": 2, "use_bn": True}
    )
    config.augment = ml_collections.ConfigDict()
    config.optim = optimizer(
        "adamw",
        learning_rate=1e-3,
        lr_scaling="none",
        weight_decay=1e-4,
        warmup_epochs=warmup_epochs,
        end_lr=0.0,
    )
    return config


def bilm(*, embed_dim: int, lstm_dim: int, dropout_rate: float) -> ml_collections.ConfigDict:
    """ELMo's model: a 2-layer bidirectional LSTM of `lstm_dim` cells over `embed_dim` token
    embeddings, softmax tied to them."""
    return ml_collections.ConfigDict(
        dict(
            embed_dim=embed_dim,
            lstm_dim=lstm_dim,
            num_layers=2,
            dropout_rate=dropout_rate,
            tie_embeddings=True,
            dtype="float32",
        )
    )


def text_smoke(metric: str, fields: Mapping[str, Any] | None = None):
    """A text config's `:smoke` variant: ssl_jax.methods.text_common.smoke_variant, `metric` (the
    method's own, e.g. "perplexity") evaluated first, and any other `fields` set."""
    from ssl_jax.methods import text_common

    def apply(config: ml_collections.ConfigDict) -> None:
        text_common.smoke_variant(config)
        config.update_from_flattened_dict(dict(fields or {}))
        config.eval.protocols = (metric, *config.eval.protocols)

    return apply


def text_base(fields: Mapping[str, Any], *, seq_len: int):
    """A text config's `:base` variant (the paper's size, accelerator-sized): text_common.base_sizes
    at `seq_len`, the method's `fields`, and fine-tuning at batch 32 for 3000 steps."""
    from ssl_jax.methods import text_common

    def apply(config: ml_collections.ConfigDict) -> None:
        text_common.base_sizes(config, seq_len=seq_len)
        config.update_from_flattened_dict(dict(fields))
        config.eval.update(finetune_batch_size=32, finetune_steps=3000)

    return apply
