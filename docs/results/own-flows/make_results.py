"""Three kinds of generator trained by the same loop: nice-small (built-in), a zuko neural spline
flow and a normflows Real-NVP (examples/own_flows.py), each by MLE and by the Hybrid objective
(WGAN-GP critic dcgan-small, λ = 0.1, n_critic 5: the quick preset's settings) on mnist5k with
the same number of generator updates. Writes results.json, samples.png and table.md here.

    OMP_NUM_THREADS=1 python docs/results/own-flows/make_results.py --runs /tmp/own-flows [--steps 300]

Re-running reuses finished runs and evaluations. Every number is of the last checkpoint (the same
update budget for all), on the 500 test images; MODE from 5,000 samples with mnist-robust.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
MODELS = {
    "nice-small": ("nice-small", []),
    "zuko NSF": (f"{ROOT / 'examples' / 'own_flows.py'}:zuko_nsf", []),
    "normflows Real-NVP": (f"{ROOT / 'examples' / 'own_flows.py'}:normflows_realnvp", []),
}
OBJECTIVES = {"MLE": "mnist-mle", "Hybrid": "mnist-hybrid"}


def flowgan(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "flowgan", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"flowgan {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def train(run: Path, model: str, options: list[str], preset: str, steps: int) -> None:
    if (run / "checkpoints" / "latest.pt").is_file():
        flowgan("train", "--resume", str(run), "--max-steps", str(steps), "--no-progress")  # finishes a cut run
        return
    flowgan(
        "train", "--preset", preset, "--dataset", "mnist5k", "--model", model, *options,
        "--critic", "dcgan-small", "--max-steps", str(steps), "--eval-every", str(max(1, steps // 3)),
        "--train-eval-samples", "500", "--no-progress", "--out", str(run),
    )  # fmt: skip


def evaluate(run: Path) -> dict:
    out = run / "eval" / "own-flows-test.json"
    if not out.is_file():
        flowgan(
            "evaluate", str(run), "--checkpoint", "latest", "--split", "test", "--metrics", "nll,mode",
            "--samples", "5000", "--output", str(out),
        )  # fmt: skip
    return json.loads(out.read_text())


def seconds_per_update(run: Path) -> float:
    rates = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train" and record.get("steps_per_s"):
            rates.append(1.0 / record["steps_per_s"])
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="folder for the training runs (not committed)")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    rows = []
    for label, (model, options) in MODELS.items():
        for objective, preset in OBJECTIVES.items():
            run = Path(args.runs) / f"{label.replace(' ', '-')}-{objective}".lower()
            print(f"{label} {objective}: training {args.steps} updates -> {run}", flush=True)
            train(run, model, options, preset, args.steps)
            result = evaluate(run)
            grid = run / "own-flows-samples.png"
            if not grid.is_file():
                flowgan("sample", str(run), "--checkpoint", "latest", "-n", "36", "--seed", "0", "-o", str(grid))
            info = json.loads((run / "config.json").read_text())
            rows.append(
                {
                    "model": label,
                    "objective": objective,
                    "run": run.name,
                    "steps": args.steps,
                    "parameters": info["parameters"]["model"],
                    "test_nll_nats": result["nll_nats"],
                    "test_nll_bpd": result["nll_bpd"],
                    "mode": result.get("mode", {}).get("score")
                    if isinstance(result.get("mode"), dict)
                    else result.get("mode"),
                    "seconds_per_update": seconds_per_update(run),
                    "grid": str(grid),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    (HERE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    figure(rows)
    table(rows)


def figure(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(OBJECTIVES), len(MODELS), figsize=(3.2 * len(MODELS), 3.9 * len(OBJECTIVES)))
    for row in rows:
        i, j = list(OBJECTIVES).index(row["objective"]), list(MODELS).index(row["model"])
        ax = axes[i][j]
        ax.imshow(plt.imread(row["grid"]), cmap="gray")
        ax.set_title(
            f"{row['model']}, {row['objective']}\nNLL {row['test_nll_nats']:.0f} nats, MODE {row['mode']:.2f}",
            fontsize=9,
        )
        ax.axis("off")
    fig.suptitle(f"36 samples (seed 0) after {rows[0]['steps']} generator updates on mnist5k", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "samples.png", dpi=110)


def table(rows: list[dict]) -> None:
    lines = [
        "| generator | objective | parameters | test NLL (nats) | bits/dim | MODE | s / update |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['objective']} | {r['parameters']:,} | {r['test_nll_nats']:.1f} | "
            f"{r['test_nll_bpd']:.3f} | {r['mode']:.2f} | {r['seconds_per_update']:.3f} |"
        )
    (HERE / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
