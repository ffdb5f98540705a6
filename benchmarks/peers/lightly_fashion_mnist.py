"""The PyTorch peer: lightly 1.6's self-supervised methods on Fashion-MNIST, scored by ssl_jax's own
kNN and linear-probe definitions, so one table can hold both libraries from one machine and one day.

  pip install -e '.[peer]'
  python benchmarks/peers/lightly_fashion_mnist.py --data-dir ../shared/data/fashion-mnist \
      --method simclr --backbone small_cnn --batch-size 256 --epochs 3 --out runs/peer/simclr

Each method is written as lightly's own examples and CIFAR-10 benchmark write it (its transforms, heads,
losses and momentum updates; SGD lr 0.06 x batch / 128, momentum 0.9, weight decay 5e-4, cosine decay per
step, no warm-up), at 28 px on one-channel images, with no blur (a 28-px image has nothing to blur away;
ssl_jax's 28-px presets leave it out too). Backbones: `small_cnn` (ssl_jax's default encoder: conv3x3-BN-
ReLU at widths 32/64/128, stride 2 each, global average pooling) and `resnet18` (torchvision's, CIFAR stem:
3x3 conv stride 1, no max-pool). Head sizes are read from the matching ssl_jax config.

After pre-training, the frozen backbone embeds the un-augmented train and test splits (eval mode,
normalized by the Fashion-MNIST mean and std), and ssl_jax's feature protocols score them with
ssl_jax.default_config's evaluation settings: kNN (cosine, k = 20, T = 0.07) and the linear probe on
standardized features (L2 chosen on a held-out 10% of the training split). Writes OUT/features.npz and
OUT/result.json (accuracies, pre-training seconds, views/s, the settings) and prints the JSON.

`--data-dir ''` uses the Fashion-MNIST subset shipped inside ssl_jax (for tests and a try-out).
Needs torch, torchvision and lightly (the `peer` extra); neither ssl_jax nor its tests need them.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from importlib import metadata

import numpy as np
import torch
import torchvision
from lightly import loss as lightly_loss
from lightly import transforms as lightly_transforms
from lightly.models import utils as lightly_utils
from lightly.models.modules import heads
from PIL import Image
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ssl_jax import config_util, default_config  # noqa: E402
from ssl_jax import data as ssl_data  # noqa: E402
from ssl_jax.augment import FASHION_MNIST_MEAN, FASHION_MNIST_STD  # noqa: E402
from ssl_jax.transfer.evaluate import FEATURE_PROTOCOLS  # noqa: E402

METHODS = ("simclr", "byol", "barlow_twins", "vicreg", "moco_v2", "dino")
NORMALIZE = {"mean": list(FASHION_MNIST_MEAN), "std": list(FASHION_MNIST_STD)}


def head_dims(method: str, backbone_name: str) -> tuple[int, ...]:
    """The head sizes of ssl_jax's configs/<method>_fashion_mnist.py for this backbone (its
    `:small_cnn` variant, or the ResNet-18 recipe): (hidden, output) of the projector, or DINO's
    (hidden, bottleneck, prototypes), so both libraries train the same networks."""
    variant = "small_cnn" if backbone_name == "small_cnn" else ""
    if method == "dino" and backbone_name == "resnet18":
        variant = "resnet18"
    config = config_util.load_config(
        os.path.join(ROOT, "configs", f"{method}_fashion_mnist.py:{variant}")
    )
    if method == "dino":
        head = config.model.head
        return head.hidden_dim, head.bottleneck_dim, head.output_dim
    return config.model.projector.hidden_dim, config.model.projector.output_dim


# ------------------------------------------------------------------------------------------ networks


class SmallConvNet(nn.Module):
    """ssl_jax.models.small.SmallConvNet in PyTorch: conv3x3 (no bias)-BN-ReLU per width, then the
    global average. PyTorch's BN momentum 0.1 is flax's 0.9."""

    def __init__(self, widths=(32, 64, 128), strides=(2, 2, 2), in_channels: int = 1):
        super().__init__()
        layers, c = [], in_channels
        for width, stride in zip(widths, strides, strict=True):
            layers += [
                nn.Conv2d(c, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width, eps=1e-5, momentum=0.1),
                nn.ReLU(inplace=True),
            ]
            c = width
        self.layers = nn.Sequential(*layers)
        self.feature_dim = c

    def forward(self, x):
        return self.layers(x).mean(dim=(2, 3))


def resnet18_cifar(in_channels: int = 1) -> nn.Module:
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.feature_dim = 512
    return net


def backbone(name: str) -> nn.Module:
    if name == "small_cnn":
        return SmallConvNet()
    if name == "resnet18":
        return resnet18_cifar()
    raise ValueError(f"unknown backbone {name!r}; valid: small_cnn, resnet18")


# ------------------------------------------------------------------------------------------- methods


def cosine_momentum(step: int, total: int, start: float) -> float:
    """BYOL's / DINO's target momentum: `start` -> 1 on a cosine over the run (lightly's
    cosine_schedule)."""
    return 1.0 - (1.0 - start) * (math.cos(math.pi * step / max(1, total)) + 1) / 2


def byol_views(size: int):
    """lightly's BYOL view pair (asymmetric solarization) at `size` px, one channel, no blur."""
    view = {"input_size": size, "normalize": NORMALIZE, "gaussian_blur": 0.0}
    return lightly_transforms.BYOLTransform(
        view_1_transform=lightly_transforms.BYOLView1Transform(**view),
        view_2_transform=lightly_transforms.BYOLView2Transform(**view),
    )


class Peer(nn.Module):
    """One lightly method: `views(transform input)`, `loss(views, step, total_steps)`, the backbone."""

    def __init__(self, method: str, net: nn.Module, dims: tuple[int, ...], size: int):
        super().__init__()
        self.method, self.backbone = method, net
        feat, hidden, out = net.feature_dim, dims[0], dims[-1]
        gray = {"input_size": size, "normalize": NORMALIZE}
        if method == "simclr":
            self.head = heads.SimCLRProjectionHead(feat, hidden, out)
            self.criterion = lightly_loss.NTXentLoss(temperature=0.2)
            self.transform = lightly_transforms.SimCLRTransform(**gray, gaussian_blur=0.0)
        elif method in ("byol", "moco_v2"):
            if method == "byol":
                self.head = heads.BYOLProjectionHead(feat, hidden, out)
                self.predictor = heads.BYOLPredictionHead(out, hidden, out)
                self.criterion = lightly_loss.NegativeCosineSimilarity()
                self.transform = byol_views(size)
            else:
                self.head = heads.MoCoProjectionHead(feat, hidden, out)
                self.criterion = lightly_loss.NTXentLoss(
                    temperature=0.2, memory_bank_size=(4096, out)
                )
                self.transform = lightly_transforms.MoCoV2Transform(**gray, gaussian_blur=0.0)
            self.target_backbone = _frozen_copy(net)
            self.target_head = _frozen_copy(self.head)
        elif method == "barlow_twins":
            self.head = heads.BarlowTwinsProjectionHead(feat, hidden, out)
            self.criterion = lightly_loss.BarlowTwinsLoss()
            self.transform = byol_views(size)  # lightly's Barlow Twins example uses BYOL's views
        elif method == "vicreg":
            self.head = heads.VICRegProjectionHead(feat, hidden, out)
            self.criterion = lightly_loss.VICRegLoss()
            self.transform = lightly_transforms.VICRegTransform(**gray, gaussian_blur=0.0)
        elif method == "dino":
            self.head = heads.DINOProjectionHead(feat, *dims, freeze_last_layer=1)
            self.target_backbone = _frozen_copy(net)
            # A new head loaded with the student's weights: weight-normed layers cannot be deep-copied.
            self.target_head = heads.DINOProjectionHead(feat, *dims)
            self.target_head.load_state_dict(self.head.state_dict())
            lightly_utils.deactivate_requires_grad(self.target_head)
            self.criterion = lightly_loss.DINOLoss(output_dim=out, warmup_teacher_temp_epochs=0)
            self.transform = lightly_transforms.DINOTransform(
                global_crop_size=size,
                local_crop_size=12 * size // 28,
                gaussian_blur=(0.0, 0.0, 0.0),
                normalize=NORMALIZE,
            )
        else:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")

    def loss(self, views: list[torch.Tensor], step: int, total: int, epoch: int) -> torch.Tensor:
        m = self.method
        if m in ("simclr", "barlow_twins", "vicreg"):
            return self.criterion(
                self.head(self.backbone(views[0])), self.head(self.backbone(views[1]))
            )
        if m == "byol":
            momentum = cosine_momentum(step, total, 0.99)
            lightly_utils.update_momentum(self.backbone, self.target_backbone, momentum)
            lightly_utils.update_momentum(self.head, self.target_head, momentum)
            p = [self.predictor(self.head(self.backbone(v))) for v in views]
            with torch.no_grad():
                z = [self.target_head(self.target_backbone(v)) for v in views]
            return 0.5 * (self.criterion(p[0], z[1]) + self.criterion(p[1], z[0]))
        if m == "moco_v2":
            lightly_utils.update_momentum(self.backbone, self.target_backbone, 0.99)
            lightly_utils.update_momentum(self.head, self.target_head, 0.99)
            query = self.head(self.backbone(views[0]))
            with torch.no_grad():
                key = self.target_head(self.target_backbone(views[1]))
            return self.criterion(query, key)
        # DINO: the teacher sees the two global crops, the student every crop.
        momentum = cosine_momentum(step, total, 0.996)
        lightly_utils.update_momentum(self.backbone, self.target_backbone, momentum)
        lightly_utils.update_momentum(self.head, self.target_head, momentum)
        with torch.no_grad():
            teacher = [self.target_head(self.target_backbone(v)) for v in views[:2]]
        student = [self.head(self.backbone(v)) for v in views]
        return self.criterion(teacher, student, epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        if self.method == "dino":
            self.head.cancel_last_layer_gradients(current_epoch=epoch)


def _frozen_copy(module: nn.Module) -> nn.Module:
    target = copy.deepcopy(module)
    lightly_utils.deactivate_requires_grad(target)
    return target


# ---------------------------------------------------------------------------------------------- data


def load_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and int labels of a split, through ssl_jax's own reader."""
    if data_dir:
        source = ssl_data.fashion_mnist(data_dir, split)
    else:
        source = ssl_data.embedded_fashion_mnist(split)
    batch = source.get(np.arange(len(source)))
    return np.asarray(batch["image"])[..., 0], np.asarray(batch["label"])


class ViewDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i], mode="L"))


@torch.no_grad()
def embed(net: nn.Module, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    net.eval()
    mean, std = FASHION_MNIST_MEAN[0], FASHION_MNIST_STD[0]
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).float().div_(255).unsqueeze(1)
        out.append(net((x - mean) / std).float().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------- run


def pretrain(args) -> dict:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "test")
    dims = head_dims(args.method, args.backbone)
    model = Peer(args.method, backbone(args.backbone), dims, size=train_x.shape[1])
    loader = torch.utils.data.DataLoader(
        ViewDataset(train_x, model.transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    steps_per_epoch = len(loader)
    total = int(round(args.epochs * steps_per_epoch))  # as ssl_jax.train.total_steps
    if args.max_steps:
        total = min(total, args.max_steps)
    lr = args.lr if args.lr else 0.06 * args.batch_size / 128
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total))

    model.train()
    step, views_seen, losses = 0, 0, []
    start = time.perf_counter()
    while step < total:
        epoch = step // steps_per_epoch
        for views in loader:
            loss = model.loss(views, step, total, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            model.after_backward(epoch)
            optimizer.step()
            schedule.step()
            views_seen += sum(v.shape[0] for v in views)
            step += 1
            if step % args.log_every == 0 or step == total:
                losses.append({"step": step, "loss": loss.item()})
                print(json.dumps(losses[-1]), flush=True)
            if step >= total:
                break
    seconds = time.perf_counter() - start

    train_f = embed(model.backbone, train_x)
    test_f = embed(model.backbone, test_x)
    os.makedirs(args.out, exist_ok=True)
    np.savez(
        os.path.join(args.out, "features.npz"),
        train=train_f,
        train_labels=train_y,
        test=test_f,
        test_labels=test_y,
    )
    eval_cfg = default_config.get_config().eval
    if (
        args.eval_train_examples
    ):  # a fixed random subset of the training features, as max_train_examples
        rows = np.random.default_rng(args.seed).permutation(len(train_f))[
            : args.eval_train_examples
        ]
        train_f, train_y = train_f[rows], train_y[rows]
    scores = {
        p: FEATURE_PROTOCOLS[p](eval_cfg, train_f, train_y, test_f, test_y, 10, args.seed)
        for p in args.protocols.split(",")
    }
    return {
        "library": f"lightly {metadata.version('lightly')} (torch {torch.__version__})",
        "method": args.method,
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "epochs": total / steps_per_epoch,
        "steps": total,
        "learning_rate": lr,
        "weight_decay": args.weight_decay,
        "head_dims": list(dims),
        "top1": {p: scores[p]["top1"] for p in scores},
        "pretrain_seconds": seconds,
        "views_per_second": views_seen / seconds,
        "final_loss": losses[-1]["loss"] if losses else None,
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, python "
        f"{platform.python_version()}",
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="", help="the IDX files ('': the embedded subset)")
    parser.add_argument("--method", default="simclr", choices=METHODS)
    parser.add_argument("--backbone", default="small_cnn", choices=("small_cnn", "resnet18"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=0, help="> 0: stop after this many steps")
    parser.add_argument("--lr", type=float, default=0.0, help="0: 0.06 x batch / 128")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument(
        "--eval-train-examples", type=int, default=0, help="> 0: score with this many train rows"
    )
    parser.add_argument("--protocols", default="knn,linear", help="ssl_jax's feature protocols")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "peer", "lightly"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    result = pretrain(args)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
