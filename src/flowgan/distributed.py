"""Process-group helpers for ``torchrun``; filled in with the data-parallel trainer."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_process_group() -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
