r"""The networks of flowgan's own score classifiers (the offline stand-ins for Inception-v3).

The Inception and MODE scores (§3.2 of the paper; Salimans et al. 2016, Che et al. 2017) need a
classifier ``p(y|x)`` for the labels of the dataset; FID/KID (Heusel et al. 2017; Bińkowski et
al. 2018) need a feature map. Offline, flowgan uses its own small networks:

=============== =================================================================================
``cnn``         :class:`SmallCNN`, for 1-channel images (MNIST, Fashion-MNIST, digits): two
                blocks of two 3×3 conv + batch-norm + ReLU (16, 32 channels) and a 2×2 max-pool,
                adaptive average pooling to 4×4, a 128-unit ReLU layer (the *features* used for
                FID/KID) and a linear layer to the logits. 83 k parameters at width 16
                (``mnist-clean``), 137 k at width 24 (``mnist-robust``: 24, 48 channels).
``resnet``      :class:`SmallResNet`, for 3-channel images (CIFAR-10): a 3×3 stem and three
                stages of one residual block each (widths 16, 32, 64; strides 1, 2, 2), global
                average pooling (the 64 *features*) and a linear layer. 78 k parameters.
=============== =================================================================================

Both take images in ``[0, 1]`` (the normalisation ``(x - mean) / std`` is part of the module,
:class:`Classifier`). Training: :mod:`.classifier_training`; files and lookup: :mod:`.classifiers`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FlowganError

INPUT_CONVENTION = "images in [0, 1]; trained on dequantized (k + u)/256, u ~ U(0, 1)"


class SmallCNN(nn.Module):
    """Two conv blocks (``width``, ``2·width`` channels), 4×4 adaptive pooling, ``hidden`` features."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, hidden: int = 128, dropout: float = 0.3
    ):
        super().__init__()

        def conv(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        w = width
        self.body = nn.Sequential(
            *conv(in_channels, w), *conv(w, w), nn.MaxPool2d(2),
            *conv(w, 2 * w), *conv(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(2 * w * 16, hidden), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


class _Block(nn.Module):
    """Basic residual block (He et al. 2016): two 3×3 convs with batch-norm, projection shortcut."""

    def __init__(self, i: int, o: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(o)
        self.short = (
            nn.Identity()
            if stride == 1 and i == o
            else nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(h)) + self.short(x))


class SmallResNet(nn.Module):
    """3×3 stem, stages of ``blocks`` residual blocks at widths ``w, 2w, 4w``, global average pool."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, width: int = 16, blocks: int = 1, dropout: float = 0.0
    ):
        super().__init__()
        w = width
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        ]
        c = w
        for stage, out in enumerate((w, 2 * w, 4 * w)):
            for b in range(blocks):
                layers.append(_Block(c, out, 2 if (stage > 0 and b == 0) else 1))
                c = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


ARCHS: dict[str, type] = {"cnn": SmallCNN, "resnet": SmallResNet}


class Classifier(nn.Module):
    """``net((x - mean) / std)`` for images ``x`` in ``[0, 1]``: ``forward`` gives logits,
    ``features`` the penultimate layer (FID/KID). Scriptable with ``torch.jit.script``."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features((x - self.mean) / self.std)


def build_classifier(
    arch: str, shape: tuple[int, ...], num_classes: int, mean: list[float], std: list[float], **options
) -> Classifier:
    if arch not in ARCHS:
        raise FlowganError(f"unknown classifier architecture {arch!r}; choose from {', '.join(ARCHS)}")
    net = ARCHS[arch](in_channels=int(shape[0]), num_classes=int(num_classes), **options)
    return Classifier(net, mean, std).to(torch.float32)


def default_arch(shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """``cnn`` (width 16) for grey-scale images, ``resnet`` (width 16) for colour images."""
    return ("cnn", {"width": 16}) if shape[0] == 1 else ("resnet", {"width": 16})
