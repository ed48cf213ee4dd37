"""DCGAN-style critics (discriminators) of the Flow-GAN experiments (§3.2), for any image shape.

``dcgan-mnist`` follows the original code's WGAN critic for MNIST: two 5×5 stride-2
convolutions (1 and 64 output channels in the original), a 1024-unit linear layer and a linear
output, LeakyReLU(0.2) after each hidden layer.

``dcgan-cifar10`` follows its CIFAR-10 WGAN critic: four 5×5 stride-2 convolutions with 64, 128,
256 and 512 channels, each followed by LeakyReLU(0.2) and layer normalisation over (C, H, W),
then a linear output.

No batch normalisation: the gradient penalty is defined per sample, and batch statistics would
couple the samples of a batch (Gulrajani et al. 2017, §4). Outputs are raw scores (logits), shape
``(N,)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def _conv_out(size: int) -> int:
    return (size + 2 * 2 - 5) // 2 + 1  # 5x5, stride 2, padding 2 ("SAME")


@dataclass(frozen=True)
class CriticConfig:
    kind: str = "mnist"  # "mnist" (conv-conv-linear-linear) or "cifar10" (four conv + layer norm)
    channels: tuple[int, ...] = (1, 64)
    hidden: int = 1024  # the linear layer of the "mnist" critic
    slope: float = 0.2


CRITICS: dict[str, dict[str, Any]] = {
    "dcgan-mnist": dict(kind="mnist", channels=(1, 64), hidden=1024),
    "dcgan-cifar10": dict(kind="cifar10", channels=(64, 128, 256, 512)),
    "dcgan-small": dict(kind="mnist", channels=(16, 32), hidden=128),
    "dcgan-cifar10-small": dict(kind="cifar10", channels=(16, 32, 64)),
}


class DCGANCritic(nn.Module):
    def __init__(self, shape: tuple[int, int, int], cfg: CriticConfig, spec: dict | None = None):
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for out in cfg.channels:
            layers.append(nn.Conv2d(c, out, 5, stride=2, padding=2))
            layers.append(nn.LeakyReLU(cfg.slope))
            h, w, c = _conv_out(h), _conv_out(w), out
            if cfg.kind == "cifar10":
                layers.append(nn.LayerNorm([c, h, w]))
        layers.append(nn.Flatten())
        if cfg.kind == "mnist":
            layers += [nn.Linear(c * h * w, cfg.hidden), nn.LeakyReLU(cfg.slope), nn.Linear(cfg.hidden, 1)]
        elif cfg.kind == "cifar10":
            layers.append(nn.Linear(c * h * w, 1))
        else:
            raise ValueError(f"unknown critic kind {cfg.kind!r}")
        self.net = nn.Sequential(*layers)
        self.spec = spec or {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


#: the critic size paired with each named flow model: the paper's critic with the paper's flows,
#: the small critic with the small (CPU-sized) flows
CRITIC_SIZE = {
    "nice-mnist": "paper",
    "realnvp-cifar10": "paper",
    "glow-cifar10": "paper",
    "glow-mnist": "paper",
    "nice-small": "small",
    "realnvp-small": "small",
    "glow-small": "small",
}


def default_critic(shape: tuple[int, int, int], model_name: str) -> str:
    """The critic of ``model_name`` for images of ``shape``: by channels (MNIST-like or
    CIFAR-like) and by the model's size (:data:`CRITIC_SIZE`)."""
    if model_name not in CRITIC_SIZE:
        raise ValueError(f"no default critic for model {model_name!r}; choose one with --critic")
    small = CRITIC_SIZE[model_name] == "small"
    if shape[0] == 1:
        return "dcgan-small" if small else "dcgan-mnist"
    return "dcgan-cifar10-small" if small else "dcgan-cifar10"


def build_critic(name: str, shape: tuple[int, int, int], **overrides: Any) -> DCGANCritic:
    if name not in CRITICS:
        raise ValueError(f"unknown critic {name!r}; choose from {', '.join(CRITICS)}")
    values = {**CRITICS[name], **overrides}
    fields = {f.name for f in dataclasses.fields(CriticConfig)}
    if set(values) - fields:
        raise ValueError(f"critic {name!r} has no option(s) {sorted(set(values) - fields)}")
    values["channels"] = tuple(values["channels"])
    spec = {
        "name": name,
        "shape": list(shape),
        "overrides": {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()},
    }
    return DCGANCritic(tuple(shape), CriticConfig(**values), spec=spec)
