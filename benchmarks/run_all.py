"""All benchmarks in one run, one table: every figure a ratio or a time measured in this run.

    python benchmarks/run_all.py [--quick]        (about 10 minutes; --quick: fewer rounds)

Rows: the NICE MLE step against the machine's fp32 matmul peak (batch 100 and 500); the same
network in normflows 1.7.3 against flowgan in fp32 and bf16 (needs ``pip install normflows==1.7.3``);
exact NLL evaluation against the peak; the adversarial step and its split; the Gaussian-mixture
NLL against the same-size matmul; the Jacobian spectra of 64 nice-mnist samples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402


def _script_json(name: str, *args: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run(
            [sys.executable, str(HERE / name), *args, "--json", str(out)], check=True, capture_output=True, text=True
        )
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    args = p.parse_args()
    rounds = 3 if args.quick else 7
    rows: list[tuple[str, str, str]] = []

    def row(what, value, target=""):
        rows.append((what, value, target))
        print(f"  {what}: {value}" + (f"   (target {target})" if target else ""), flush=True)

    print(f"machine: {machine()}; load average {os.getloadavg()}", flush=True)
    import nice_step

    for b in (100, 500):
        r = nice_step.measure(b, "fp32", rounds)
        lo, hi = r["ratio_range"]
        row(
            f"NICE MLE step, batch {b}, fp32: FLOP rate / fp32 matmul peak",
            f"{r['ratio']:.2f}x [{lo:.2f}-{hi:.2f}] ({r['images_per_s']:.0f} images/s)",
            ">= 0.55x" if b == 100 else ">= 0.8x",
        )
    r = nice_step.measure_nll(rounds=rounds)
    lo, hi = r["ratio_range"]
    row(
        "exact NLL evaluation (nice-mnist, batch 1000): FLOP rate / peak",
        f"{r['ratio']:.2f}x [{lo:.2f}-{hi:.2f}] ({r['images_per_s']:.0f} images/s)",
        ">= 0.8x",
    )

    try:
        import normflows  # noqa: F401
        import vs_normflows
        from common import timeit

        nf = timeit(vs_normflows.normflows_step(100), min_time=3.0)
        for prec, target in (("fp32", ">= 1.1x"), ("bf16", ">= 1.5x")):
            ours = timeit(vs_normflows.flowgan_step(100, prec), min_time=3.0)
            row(
                f"NICE MLE step vs normflows 1.7.3, batch 100, flowgan {prec}",
                f"{nf / ours:.2f}x ({100 / ours:.0f} vs {100 / nf:.0f} images/s)",
                target,
            )
    except ImportError:
        row("NICE MLE step vs normflows 1.7.3", "not measured: pip install normflows==1.7.3")

    import adv_step

    for model in ("nice-mnist", "nice-small"):
        r = adv_step.split(model, 0.0, 100)
        total = sum(r["parts"].values())
        split = ", ".join(f"{k} {v / total:.0%}" for k, v in r["parts"].items())
        row(f"ADV (WGAN-GP, n_critic 5) step, {model}", f"{1 / r['whole']:.2f} generator updates/s; {split}")

    g = _script_json("gmm_nll.py", "--repeats", "2")
    row(
        "Gaussian-mixture NLL, 10k x 50k x 784: time / same-size matmul",
        f"{g['ratio']:.2f}x ({g['mixture_nll_s']:.1f} s vs {g['matmul_float32_s']:.1f} s; {g['data']})",
        "<= 2x",
    )
    j = _script_json("jacobian_spectra.py")
    row(
        "singular values of 64 nice-mnist Jacobians",
        f"{j['singular_values_s']:.1f} s (Jacobians {j['jacobian_s']:.1f} s + SVD {j['svd_s']:.1f} s)",
        "<= 10 s",
    )

    print()
    print("ratios: median of interleaved rounds [min-max over rounds]")
    print("| measurement | result | target |\n|---|---|---|")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")


if __name__ == "__main__":
    main()
