"""The networks inside coupling layers: NICE's MLP and Real-NVP's residual CNN.

Both end in a zero-initialised layer, so every coupling starts as the identity and a freshly
built flow is the logit step followed by (almost) nothing: training starts from a well-posed
density, which matters for adversarial training, whose generator gets no likelihood signal.
"""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """``in → hidden``, ``depth × (hidden → hidden)``, ``→ out``; ReLU between (NICE, §5.1)."""

    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int):
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        last = nn.Linear(hidden, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}; choose 'batch' or 'none'")


class ResidualBlock(nn.Module):
    """Pre-activation block ``x + conv(relu(norm(conv(relu(norm(x))))))`` with 3×3 convolutions."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class ResNet(nn.Module):
    """Real-NVP's ``s``/``t`` network (Dinh et al. 2017, §4.1): a 3×3 convolution to ``channels``,
    ``blocks`` residual blocks, normalization and ReLU, and a zero-initialised 3×3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int, norm: str = "batch"):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, norm) for _ in range(blocks)])
        self.out_norm = _norm(norm, channels)
        self.out = nn.Conv2d(channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = self.blocks(self.inp(x))
        return self.out(nn.functional.relu(self.out_norm(h)))
