"""Benchmark: the Gaussian-mixture baseline's exact NLL vs the same-size matrix product.

Target (issue #5, §7): the mixture's log p of 10,000 test points under 50,000 training centres in
784 dimensions within 2x of the time of the float32 matmul ``(10000 x 784) @ (784 x 50000)``,
measured in the same run. Uses real MNIST (``--data-dir``, ``$FLOWGAN_DATA`` or ``../shared/data``)
when present, else uniform random data of the same size, and says which.

    python benchmarks/gmm_nll.py [--repeats 2] [--precision float32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flowgan.analysis.gmm import GaussianMixtureBaseline  # noqa: E402
from flowgan.likelihood import dequantized  # noqa: E402


def load(n_train: int, n_test: int, data_dir: str | None):
    from flowgan.errors import FlowganError

    candidates = [data_dir, os.environ.get("FLOWGAN_DATA"), str(ROOT.parent / "shared" / "data"), "/work/shared/data"]
    for cand in candidates:
        if cand and Path(cand).is_dir():
            try:
                import flowgan

                ds = flowgan.load_dataset("mnist", data_dir=cand, download=False)
                return ds.train.images[:n_train], ds.test.images[:n_test], f"real MNIST from {cand}"
            except FlowganError:
                continue
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (n_train, 1, 28, 28), generator=gen, dtype=torch.uint8)
    test = torch.randint(0, 256, (n_test, 1, 28, 28), generator=gen, dtype=torch.uint8)
    return train, test, "uniform random uint8 images (MNIST not found)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=50000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--sigma", type=float, default=0.2)
    p.add_argument("--precision", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--chunk-rows", type=int, default=1024)
    p.add_argument("--chunk-centres", type=int, default=4096)
    p.add_argument("--data-dir")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test, source = load(args.n_train, args.n_test, args.data_dir)
    x = dequantized(test)
    gmm = GaussianMixtureBaseline(
        train, args.sigma, precision=args.precision, chunk_rows=args.chunk_rows, chunk_centres=args.chunk_centres
    )
    gmm.log_prob_sigmas(x[:8], [args.sigma])  # prepares centres, warms up
    a = torch.rand(len(test), train[0].numel())
    b = torch.rand(len(train), train[0].numel())
    mm_times, gmm_times, mm_cpu, gmm_cpu = [], [], [], []
    nll = None
    for _ in range(args.repeats):  # interleaved, so that both see the same load; the minimum counts
        t, c = time.perf_counter(), time.process_time()
        y = a @ b.T
        mm_times.append(time.perf_counter() - t)
        mm_cpu.append(time.process_time() - c)
        del y
        t, c = time.perf_counter(), time.process_time()
        lp = gmm.log_prob(x)
        gmm_times.append(time.perf_counter() - t)
        gmm_cpu.append(time.process_time() - c)
        nll = float(-lp.mean())
    result = {
        "data": source,
        "n_train": len(train),
        "n_test": len(test),
        "dim": train[0].numel(),
        "sigma": args.sigma,
        "precision": args.precision,
        "nll_nats": nll,
        "matmul_float32_s": min(mm_times),
        "mixture_nll_s": min(gmm_times),
        "ratio": min(gmm_times) / min(mm_times),
        "all_matmul_s": mm_times,
        "all_mixture_s": gmm_times,
        "matmul_cpu_s": min(mm_cpu),
        "mixture_cpu_s": min(gmm_cpu),
        "cpu_time_ratio": min(gmm_cpu) / min(mm_cpu),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    print(f"data: {source}")
    print(
        f"mixture NLL ({len(test)} test x {len(train)} centres x {result['dim']} dims, sigma {args.sigma}, "
        f"{args.precision}): {result['mixture_nll_s']:.2f} s; NLL {nll:.2f} nats"
    )
    print(f"same-size float32 matmul: {result['matmul_float32_s']:.2f} s; ratio {result['ratio']:.2f} (target <= 2)")
    print(
        f"process CPU time (less sensitive to other load): mixture {result['mixture_cpu_s']:.2f} s, matmul "
        f"{result['matmul_cpu_s']:.2f} s, ratio {result['cpu_time_ratio']:.2f}"
    )
    print(f"threads {result['threads']}, load average {result['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
