"""Data-parallel helpers for ``torchrun`` (gloo on CPUs, nccl on GPUs).

``torchrun --nproc-per-node N -m flowgan train ...`` starts N processes; each reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment. The trainer wraps generator and critic
in ``DistributedDataParallel``, gives every process its shard of the *global* batch (all
processes draw the same global noise, so N processes compute what one would), evaluates the
exact NLL on shards and sums the results, and lets rank 0 alone write files. Multi-node runs use
torchrun's usual rendezvous flags (``--nnodes``, ``--rdzv-backend``, ``--rdzv-endpoint``).
"""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def init_process_group() -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)


def destroy_process_group(clean: bool = True) -> None:
    """Tear the process group down while Python is fully alive.

    ``clean`` (every process reached the end normally): wait at a barrier, so that no process
    leaves while another still communicates, then collect garbage, so that objects holding the
    group (``DistributedDataParallel`` modules in reference cycles, see
    :meth:`flowgan.training.Trainer.close`) are gone and destroying the group really joins its
    threads now, not at interpreter shutdown. After an error no barrier: the other processes may
    never reach it.
    """
    if not dist.is_initialized():
        return
    if clean:
        dist.barrier()
    import gc

    gc.collect()
    dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_moments(x: torch.Tensor, dims: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of ``x`` over ``dims`` (all when ``None``); under data
    parallelism over the batches of all processes, in two all-reduced passes (differentiable,
    as exact as one process's two-pass moments). Used by the coupling networks' synchronised
    batch norm and by actnorm's data-dependent initialisation."""
    if dims is None:
        dims = list(range(x.dim()))
    if not is_distributed():
        return x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    from torch.distributed.nn.functional import all_reduce

    kept = [n for d, n in enumerate(x.shape) if d not in dims]
    count = all_reduce(x.new_tensor(float(math.prod(x.shape[d] for d in dims))))
    mean = all_reduce(x.sum(dim=dims, keepdim=True)) / count
    var = all_reduce((x - mean).square().sum(dim=dims, keepdim=True)) / count
    return mean.reshape(kept), var.reshape(kept)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few floats over all processes (float64)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: list[float], device: torch.device) -> list[float]:
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
