"""What a training process runs on: the device, random seeds, the optimiser, the data stream.

Small pieces with no knowledge of run directories or objectives, shared by the trainer, the
metrics and the analyses (which import :func:`resolve_device` from here).
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import FlowganError


def mix_seed(*values: int) -> int:
    """One 32-bit seed from several integers (``numpy.random.SeedSequence``): independent
    streams for ``(seed, purpose)`` pairs without hidden global state."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


class BatchStream:
    """Deterministic stream of global batches of training indices, epoch after epoch.

    Epoch ``e`` visits a permutation drawn from ``(seed, e)``; the last incomplete batch of an
    epoch is dropped. The position ``(epoch, batch)`` is the whole state.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise FlowganError(f"batch size {batch_size} is larger than the training set ({n} images)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.batches_per_epoch = n // batch_size
        self.epoch, self.batch = 0, 0
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._perm is None:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 7))
            self._perm = torch.randperm(self.n, generator=gen)
        return self._perm

    def next(self) -> torch.Tensor:
        start = self.batch * self.batch_size
        idx = self._permutation()[start : start + self.batch_size]
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch, self._perm = self.epoch + 1, 0, None
        return idx

    @property
    def progress(self) -> float:
        """Epochs completed, fractional."""
        return self.epoch + self.batch / self.batches_per_epoch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch, self._perm = int(state["epoch"]), int(state["batch"]), None


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AMX-BF16 or AVX512-BF16), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where ``device`` has bf16 units (a CPU with AMX-BF16 or AVX512-BF16,
    :func:`cpu_has_fast_bf16`; a CUDA GPU that supports bf16), else ``"fp32"``; other values as given."""
    if precision != "auto":
        return precision
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FlowganError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlowganError("device cuda requested but CUDA is not available")
    return device


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel where available (a large share of a NICE step on a CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
