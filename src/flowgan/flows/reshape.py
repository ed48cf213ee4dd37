"""Volume-preserving rearrangements: reshape, squeeze, and the multi-scale factor-out."""

from __future__ import annotations

import torch

from .base import Flow


class Reshape(Flow):
    """Reshape each sample from ``in_shape`` to ``out_shape`` (e.g. images to NICE's vectors)."""

    volume_preserving = True

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__()
        in_shape, out_shape = tuple(in_shape), tuple(out_shape)
        if torch.Size(in_shape).numel() != torch.Size(out_shape).numel():
            raise ValueError(f"cannot reshape {in_shape} to {out_shape}")
        self.in_shape, self.out_shape = in_shape, out_shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z.reshape(z.shape[0], *self.in_shape)

    def inverse_and_logdet(self, z):
        return self.inverse(z), z.new_zeros(z.shape[0])

    def extra_repr(self):
        return f"{self.in_shape} -> {self.out_shape}"


class Squeeze(Flow):
    """Real-NVP's squeeze (Dinh et al. 2017, §3.6): ``(C, H, W) -> (4C, H/2, W/2)``.

    Each 2×2 spatial block becomes four channels; channel ``4c + 2i + j`` of the output holds pixel
    ``(2h + i, 2w + j)`` of input channel ``c``. A permutation, so ``log|det| = 0``.
    """

    volume_preserving = True

    def forward(self, x):
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"squeeze needs even height and width, got {h}x{w}")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, c * 4, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, z):
        n, c, h, w = z.shape
        x = z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c // 4, h * 2, w * 2)

    def inverse_and_logdet(self, z):
        return self.inverse(z), z.new_zeros(z.shape[0])


class FactorOut(Flow):
    """Multi-scale architecture (Real-NVP, §3.6): half of the channels leave for the latent.

    The first ``C // 2`` channels are passed to the latent unchanged (they were already
    transformed by the layers before); ``inner`` transforms the remaining ones. The output
    concatenates both halves again, so the latent keeps the input's shape.
    """

    def __init__(self, inner: Flow):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        k = x.shape[1] // 2
        z_inner, logdet = self.inner(x[:, k:])
        return torch.cat([x[:, :k], z_inner], dim=1), logdet

    def inverse(self, z):
        k = z.shape[1] // 2
        return torch.cat([z[:, :k], self.inner.inverse(z[:, k:])], dim=1)

    def inverse_and_logdet(self, z):
        k = z.shape[1] // 2
        x_inner, logdet = self.inner.inverse_and_logdet(z[:, k:])
        return torch.cat([z[:, :k], x_inner], dim=1), logdet
