"""Benchmark: exact singular values of 64 Jacobians dG/dz of nice-mnist (784 x 784 each).

Target (issue #5, §7): within 10 s on a 2-core CPU. Times the Jacobians, the SVDs and (separately,
not part of the target) the float64 log-det check against the flow. Without ``--run`` the model is
a freshly built nice-mnist whose zero-initialised output layers are given small random weights
(the timing does not depend on the values; a fresh model would have trivially triangular
Jacobians).

    python benchmarks/jacobian_spectra.py [--n 64] [--method auto|coupling|autograd] [--dtype float32|float64] [--run RUN]
"""  # noqa: E501 (the docstring is the --help text; its usage line is kept whole)

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

import flowgan  # noqa: E402
from flowgan.analysis.jacobian import jacobian_spectra  # noqa: E402


def reference_gflops(n: int = 4096) -> float:
    """Speed of a large float32 matrix product on this machine right now (for judging load)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t = time.perf_counter()
    a @ b
    return 2 * n**3 / (time.perf_counter() - t) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--method", default="auto", choices=["auto", "coupling", "autograd"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument(
        "--svd", default="auto", choices=["auto", "svd"], help="auto: Gram eigenvalues when cond <= 1e4, else SVD"
    )
    p.add_argument("--run", help="a run directory or checkpoint of nice-mnist (default: a perturbed fresh model)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        model, _ = flowgan.load_model(args.run)
        source = f"checkpoint {args.run}"
    else:
        torch.manual_seed(0)
        model = flowgan.build_model("nice-mnist").eval()
        with torch.no_grad():
            for p_ in model.parameters():
                p_.add_(0.01 * torch.randn_like(p_))
        source = "fresh nice-mnist, parameters perturbed by N(0, 0.01^2)"
    dtype = getattr(torch, args.dtype)
    ref = reference_gflops()
    runs = []
    for _ in range(args.repeats):
        c = time.process_time()
        spectra = jacobian_spectra(model, args.n, dtype=dtype, method=args.method, svd=args.svd, check=False)
        runs.append({**spectra.seconds, "cpu": time.process_time() - c})
    c = time.process_time()
    spectra = jacobian_spectra(model, args.n, dtype=dtype, method=args.method, svd=args.svd)  # once more with the check
    check_s = spectra.seconds["check"]
    best = min(runs, key=lambda s: s["jacobian"] + s["svd"])
    summary = spectra.summary()
    result = {
        "model": source,
        "n": args.n,
        "method": spectra.method,
        "jacobian_dtype": args.dtype,
        "svd": args.svd,
        "from_gram": spectra.n_gram,
        "median_log10_condition_number": summary["median_log10_condition_number"],
        "jacobian_s": best["jacobian"],
        "svd_s": best["svd"],
        "singular_values_s": best["jacobian"] + best["svd"],
        "process_cpu_s": best["cpu"],
        "check_s": check_s,
        "all_runs": runs,
        "mean_logdet": summary["mean_logdet"],
        "mean_logdet_flow": summary["mean_logdet_flow"],
        "max_abs_logdet_diff": summary["max_abs_logdet_diff"],
        "reference_gemm_gflops": ref,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    print(f"{args.n} Jacobians of nice-mnist ({source}; method {spectra.method}, {args.dtype}):")
    print(
        f"  Jacobians {result['jacobian_s']:.2f} s + singular values {result['svd_s']:.2f} s = "
        f"{result['singular_values_s']:.2f} s (target <= 10 s)"
    )
    print(
        f"  singular values of {spectra.n_gram}/{args.n} samples from J^T J (cond <= 1e4), the others by SVD; "
        f"median log10 condition number {summary['median_log10_condition_number']:.2f}"
    )
    print(f"  process CPU time {result['process_cpu_s']:.2f} s (both cores together)")
    print(
        f"  log-det check (float64 flow, not timed in the target): {result['check_s']:.2f} s; mean log|det| "
        f"{result['mean_logdet']:.2f} vs flow {result['mean_logdet_flow']:.2f} (max diff "
        f"{result['max_abs_logdet_diff']:.2e})"
    )
    print(
        f"  same-run reference: float32 GEMM 4096^3 at {ref:.0f} GFLOPS; threads {result['threads']}, load average "
        f"{result['load_average']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
