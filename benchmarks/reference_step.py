"""The floor beside ssl_jax's SimCLR step: the same step written with flax.linen and optax alone.

Nothing here imports ssl_jax. The networks have the shapes (and the parameter names) of ssl_jax's
encoders and projector: torchvision's v1.5 ResNet layout with the CIFAR stem (3x3/1 conv, no max-pool)
or the ImageNet stem (7x7/2 conv, 3x3/2 max-pool), up to global average pooling; then Dense (no bias) ->
BatchNorm -> ReLU -> Dense. The loss is NT-Xent (Chen et al. 2020, eq. 1) over the 2N views of the
batch. The step is what a plain Flax training script would write: one `jax.jit` on one device, the
state donated, BatchNorm over the device's batch, SGD with momentum and weight decay on the kernels;
no augmentation (the two float views arrive made), no shard_map, no non-finite guard, no metrics
besides the loss. benchmarks/ablations.py times it beside the library step;
tests/test_reference_step.py checks that, given the library's parameters, it computes the library's
loss and gradients.

  python benchmarks/reference_step.py --encoder resnet18 --stem cifar --image-size 32 --batch 512
  # -> "reference step: resnet18 (cifar stem), 1024 views of 32x32: ... ms, ... images/s"
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

# The kernel initializer torchvision uses for ResNets: kaiming_normal_(mode="fan_out").
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

STAGES = {"resnet18": ((2, 2, 2, 2), False), "resnet50": ((3, 4, 6, 3), True)}


def _conv(features: int, kernel: int, strides: int, dtype: Any, name: str) -> nn.Conv:
    pad = (kernel - 1) // 2  # symmetric, as torchvision pads
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_conv_init,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


def _norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


class Block(nn.Module):
    """A residual block: two 3x3 convs (basic), or 1x1 -> 3x3 (strided) -> 1x1 at 4x (bottleneck)."""

    filters: int
    strides: int
    bottleneck: bool
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.bottleneck:
            out = 4 * self.filters
            y = nn.relu(
                _norm(train, self.dtype, "bn1")(_conv(self.filters, 1, 1, self.dtype, "conv1")(x))
            )
            y = _conv(self.filters, 3, self.strides, self.dtype, "conv2")(y)
            y = nn.relu(_norm(train, self.dtype, "bn2")(y))
            y = _norm(train, self.dtype, "bn3")(_conv(out, 1, 1, self.dtype, "conv3")(y))
        else:
            out = self.filters
            y = _conv(self.filters, 3, self.strides, self.dtype, "conv1")(x)
            y = nn.relu(_norm(train, self.dtype, "bn1")(y))
            y = _norm(train, self.dtype, "bn2")(_conv(self.filters, 3, 1, self.dtype, "conv2")(y))
        if x.shape[-1] != out or self.strides != 1:
            x = _conv(out, 1, self.strides, self.dtype, "downsample_conv")(x)
            x = _norm(train, self.dtype, "downsample_bn")(x)
        return nn.relu(y + x)


class ResNet(nn.Module):
    """A ResNet trunk to global average pooling: [b, H, W, C] -> float32 [b, features]."""

    stage_sizes: tuple[int, ...]
    bottleneck: bool
    stem: str = "imagenet"
    dtype: Any = jnp.bfloat16

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = jnp.asarray(x, self.dtype)
        if self.stem == "imagenet":
            x = nn.relu(_norm(train, self.dtype, "bn1")(_conv(64, 7, 2, self.dtype, "conv1")(x)))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = nn.relu(_norm(train, self.dtype, "bn1")(_conv(64, 3, 1, self.dtype, "conv1")(x)))
        for i, blocks in enumerate(self.stage_sizes):
            for j in range(blocks):
                x = Block(
                    64 * 2**i,
                    2 if i > 0 and j == 0 else 1,
                    self.bottleneck,
                    self.dtype,
                    name=f"layer{i + 1}_{j}",
                )(x, train)
        return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)


class Projector(nn.Module):
    """SimCLR's projector: Dense (no bias) -> BatchNorm -> ReLU -> Dense, float32 out."""

    hidden_dim: int
    output_dim: int
    dtype: Any = jnp.bfloat16

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = jnp.asarray(x, self.dtype)
        x = nn.Dense(self.hidden_dim, use_bias=False, dtype=self.dtype, name="dense0")(x)
        x = nn.relu(_norm(train, self.dtype, "bn0")(x))
        x = nn.Dense(self.output_dim, dtype=self.dtype, name="dense1")(x)
        return jnp.asarray(x, jnp.float32)


class SimCLRNet(nn.Module):
    """Trunk then projector, under the names "encoder" and "head"; returns the projections."""

    encoder: nn.Module
    head: nn.Module

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return self.head(self.encoder(x, train), train)


def network(
    encoder: str,
    *,
    stem: str,
    hidden_dim: int = 2048,
    output_dim: int = 128,
    dtype: Any = jnp.bfloat16,
    stage_sizes: tuple[int, ...] | None = None,
) -> SimCLRNet:
    """ "resnet18" or "resnet50" (or any `stage_sizes` of that block kind) with the projector."""
    stages, bottleneck = STAGES[encoder]
    trunk = ResNet(stages if stage_sizes is None else stage_sizes, bottleneck, stem, dtype)
    return SimCLRNet(trunk, Projector(hidden_dim, output_dim, dtype))


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float) -> jax.Array:
    """Mean NT-Xent over the 2N anchors: each view's positive is its pair, its negatives the other
    2N - 2 views; cosine similarities over `temperature`, the self-similarity masked out."""
    z = jnp.concatenate([z1, z2]).astype(jnp.float32)
    z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
    positives = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
    log_prob = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_prob, positives[:, None], axis=-1))


class State(NamedTuple):
    params: Any
    batch_stats: Any
    opt_state: Any


def optimizer(learning_rate: float, *, momentum: float = 0.9, weight_decay: float = 1e-6):
    """SGD with momentum, L2 weight decay on the kernels (rank > 1) only, as SimCLR's recipes exempt
    biases and BatchNorm parameters."""
    return optax.chain(
        optax.add_decayed_weights(
            weight_decay, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
        ),
        optax.sgd(learning_rate, momentum=momentum),
    )


def init(model: SimCLRNet, tx, rng: jax.Array, view_shape: tuple[int, ...]) -> State:
    variables = jax.jit(functools.partial(model.init, train=True))(
        rng, jnp.zeros((2, *view_shape), jnp.float32)
    )
    params = variables["params"]
    return State(params, variables["batch_stats"], tx.init(params))


def loss_fn(model: SimCLRNet, params, batch_stats, x1, x2, *, temperature: float):
    """(loss, new batch statistics): one forward over both views, BatchNorm over all 2N of them."""
    z, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        jnp.concatenate([x1, x2]),
        train=True,
        mutable=["batch_stats"],
    )
    n = x1.shape[0]
    return nt_xent(z[:n], z[n:], temperature), updates["batch_stats"]


def make_step(model: SimCLRNet, tx, *, temperature: float = 0.2):
    """The jitted step (state, x1, x2) -> (state, loss), the state donated."""

    def step(state: State, x1: jax.Array, x2: jax.Array):
        grad_fn = jax.value_and_grad(
            functools.partial(loss_fn, model, temperature=temperature), has_aux=True
        )
        (loss, batch_stats), grads = grad_fn(state.params, state.batch_stats, x1, x2)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return State(optax.apply_updates(state.params, updates), batch_stats, opt_state), loss

    return jax.jit(step, donate_argnums=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", choices=sorted(STAGES), default="resnet18")
    parser.add_argument("--stem", choices=("cifar", "imagenet"), default="cifar")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=512, help="examples per step (2 views each)")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    model = network(args.encoder, stem=args.stem)
    tx = optimizer(0.3 * args.batch / 256)
    shape = (args.image_size, args.image_size, 3)
    state = init(model, tx, jax.random.key(0), shape)
    rng = np.random.default_rng(0)
    views = [
        jax.device_put(rng.standard_normal((2, args.batch, *shape), np.float32)) for _ in range(3)
    ]
    step = make_step(model, tx)
    for i in range(3):
        state, loss = step(state, *views[i % 3])
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for i in range(args.steps):
        state, loss = step(state, *views[i % 3])
    jax.block_until_ready((state, loss))
    step_s = (time.perf_counter() - t0) / args.steps
    print(
        f"reference step: {args.encoder} ({args.stem} stem), {2 * args.batch} views of "
        f"{args.image_size}x{args.image_size}: {1e3 * step_s:.2f} ms, "
        f"{2 * args.batch / step_s:,.0f} images/s (loss {float(loss):.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
