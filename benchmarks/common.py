"""Shared helpers of the benchmarks: the machine's matmul peak, timing, FLOP counts."""

from __future__ import annotations

import platform
import time

import torch


def _cpuinfo_field(field: str) -> str | None:
    """The first ``field : value`` of /proc/cpuinfo (None where there is no such file or field)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == field), None)
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; ``platform.processor()`` elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it is unavailable)."""
    return set((_cpuinfo_field("flags") or "").split())


def machine() -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}{gpu}"


def timeit(fn, *, warmup: int = 3, min_time: float = 2.0, min_reps: int = 5, sync=None) -> float:
    """Seconds per call (median of repeated timings after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def matmul_flops(n: int = 2048, dtype=torch.float32, device="cpu", min_time: float = 1.0) -> float:
    """FLOP/s of an ``n × n`` matmul (2n³ FLOP) on this machine, measured now."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    return 2 * n**3 / timeit(lambda: a @ b, sync=sync, min_time=min_time)


def linear_macs(model: torch.nn.Module, batch: int = 1) -> int:
    """Multiply-accumulates of all ``nn.Linear`` layers for ``batch`` inputs (one forward pass)."""
    return batch * sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def interleaved_ratio(step, flop_per_call: float, rounds: int = 5, seconds: float = 2.0, peak_n: int = 2048):
    """Median over ``rounds`` of (FLOP rate of ``step``) / (matmul peak measured right before it).

    This VM's speed drifts by up to ±30% over tens of seconds; measuring the peak and the step in
    alternation and taking the median of the per-round ratios cancels most of that drift.
    Returns ``(median ratio, median seconds per call, median peak FLOP/s)``; the per-round ratios
    are kept in :data:`LAST_RATIOS` (to show the spread).
    """
    import statistics

    ratios, secs, peaks = [], [], []
    for _ in range(rounds):
        peak = matmul_flops(peak_n)
        sec = timeit(step, warmup=1, min_time=seconds)
        ratios.append(flop_per_call / sec / peak)
        secs.append(sec)
        peaks.append(peak)
    LAST_RATIOS[:] = ratios
    return statistics.median(ratios), statistics.median(secs), statistics.median(peaks)


LAST_RATIOS: list[float] = []
