"""The PyTorch peer of the SimCLR step, for benchmarks/ablations.py's table: the same networks, loss and
views timed in PyTorch on the same device, eager and under torch.compile, channels_last, bf16 autocast.

Optional dependencies: torch and torchvision (the GPU image has both; the `peer` extra installs them).
The networks are torchvision's ResNet-18 (its stem swapped for the CIFAR 3x3/1 conv, no max-pool) and
ResNet-50, without the classifier, then the projector Dense (no bias) -> BatchNorm -> ReLU -> Dense;
NT-Xent over the 2N views; SGD with momentum, weight decay on the kernels only. The two float views are
made beforehand and live on the device, as for benchmarks/reference_step.py, so the row compares with
the reference and the library's "no augmentation" row.

  python benchmarks/peers/torch_simclr_step.py --output /tmp/torch_peer.json
  python benchmarks/peers/torch_simclr_step.py --cases simclr_r18_cifar --variants eager --steps 3 \
      --batch-scale 0.01   # a quick look on a CPU

Writes JSON: {"device", "torch", "torchvision", "rows": [{"case", "variant", "what", "step_ms",
"images_per_s", "compile_s", "loss"}]}; `ablations.py --peer-results FILE` adds its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

# The shapes of benchmarks/throughput_lib/cases.py's SimCLR cases (tests/test_step_attribution.py checks
# that they agree): examples per step (two views each), view side, trunk, stem, projector widths.
CASES = {
    "simclr_r18_cifar": dict(examples=512, size=32, arch="resnet18", stem="cifar"),
    "simclr_r50_224": dict(examples=128, size=224, arch="resnet50", stem="imagenet"),
}
PROJECTOR = (2048, 128)
TEMPERATURE = 0.2


def trunk(arch: str, stem: str) -> tuple[nn.Module, int]:
    """torchvision's ResNet up to global pooling, and its feature width."""
    model = getattr(torchvision.models, arch)(weights=None)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    features = model.fc.in_features
    model.fc = nn.Identity()
    return model, features


def network(arch: str, stem: str, hidden: int = PROJECTOR[0], out: int = PROJECTOR[1]) -> nn.Module:
    body, features = trunk(arch, stem)
    return nn.Sequential(
        body,
        nn.Linear(features, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    )


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean NT-Xent over the 2N anchors (Chen et al. 2020, eq. 1), in float32."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    n = z1.shape[0]
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pairs, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def optimizer(model: nn.Module, lr: float, weight_decay: float = 1e-6) -> torch.optim.Optimizer:
    decayed = [p for p in model.parameters() if p.ndim > 1]
    other = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def make_step(model: nn.Module, opt: torch.optim.Optimizer, *, compile: bool, device: str):
    """step(x1, x2) -> loss: forward of both views in one batch under bf16 autocast, backward, SGD."""

    def loss_of(x1, x2):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            z = model(torch.cat([x1, x2]))
        return nt_xent(z[: x1.shape[0]], z[x1.shape[0] :], TEMPERATURE)

    loss_fn = torch.compile(loss_of) if compile else loss_of

    def step(x1, x2):
        loss = loss_fn(x1, x2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_case(name: str, variant: str, *, examples: int, steps: int, warmup: int, device: str):
    """One row: best of three windows of `steps` steps after `warmup` (the first clocked as compile)."""
    spec = CASES[name]
    torch.manual_seed(0)
    model = network(spec["arch"], spec["stem"]).to(device, memory_format=torch.channels_last)
    opt = optimizer(model, lr=0.3 * examples / 256)
    step = make_step(model, opt, compile=variant == "torch.compile", device=device)
    shape = (examples, 3, spec["size"], spec["size"])
    views = [
        tuple(
            torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
            for _ in range(2)
        )
        for _ in range(3)
    ]
    t0 = time.perf_counter()
    loss = step(*views[0])
    _sync(device)
    compile_s = time.perf_counter() - t0
    for i in range(1, warmup):
        loss = step(*views[i % 3])
    _sync(device)
    windows = []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(*views[i % 3])
        _sync(device)
        windows.append((time.perf_counter() - t0) / steps)
    step_s = min(windows)
    return {
        "case": name,
        "variant": variant,
        "what": "channels_last, bf16 autocast, SGD, views made beforehand",
        "step_ms": 1e3 * step_s,
        "images_per_s": 2 * examples / step_s,
        "compile_s": compile_s,
        "loss": float(loss),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--variants", default="eager,torch.compile")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-scale", type=float, default=1.0)
    parser.add_argument("--output", default="")
    parser.add_argument("--budget-s", type=float, default=1e9, help="rows not started by then skip")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "rows": [],
    }
    start = time.perf_counter()
    # Eager rows first (seconds), then the compiled ones (a minute or so of compilation each).
    for variant in args.variants.split(","):
        for name in args.cases.split(","):
            if time.perf_counter() - start > args.budget_s:
                row = {"case": name, "variant": variant, "skipped": "time budget"}
            else:
                examples = max(2, int(CASES[name]["examples"] * args.batch_scale))
                row = time_case(
                    name,
                    variant,
                    examples=examples,
                    steps=args.steps,
                    warmup=args.warmup,
                    device=device,
                )
            print(row, flush=True)
            result["rows"].append(row)
            if args.output:  # after every row: a run stopped later keeps what it measured
                os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
                with open(args.output, "w") as f:
                    json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
