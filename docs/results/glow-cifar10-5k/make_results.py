"""Glow against Real-NVP in the cifar10-5k reproduction (issue 24): the two reproductions' numbers
side by side, their scores at sampling temperatures 0.5, 0.7 and 1.0, and sample grids.

The reproductions themselves are ordinary commands (the same preset, the same number of generator
updates for every objective and both generators; only ``--model`` differs)::

    flowgan reproduce --preset cifar10-5k --data-dir ../shared/data --skip table3,jacobian --out RUNS/realnvp-small
    flowgan reproduce --preset cifar10-5k --data-dir ../shared/data --skip table3,jacobian --out RUNS/glow-small \\
        --model glow-small

then::

    python docs/results/glow-cifar10-5k/make_results.py --data-dir ../shared/data \\
        --run realnvp-small=RUNS/realnvp-small --run glow-small=RUNS/glow-small

writes here ``results.json``, ``table.md``, ``samples_<generator>.png`` (rows: objectives; columns:
temperatures) and a copy of each reproduction's report (``<generator>/``). Scores at a temperature:
the best-validated checkpoint of each run (the one whose test NLL the table shows), 2,000 samples
drawn with the reproduction's fixed seed, the default CIFAR-10 classifier, ± the 10-split standard
deviation.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
OBJECTIVES = {"mle": "MLE", "adv": "ADV", "hybrid": "Hybrid"}
TEMPERATURES = (0.5, 0.7, 1.0)


def score_at(model, dataset, temperature: float, n: int = 2000) -> dict:
    """The Inception-style score of ``n`` samples at ``temperature`` (at T = 1 the reproduction's own)."""
    from flowgan.metrics import evaluate_samples

    return evaluate_samples(model, dataset, ["is"], n_samples=n, device="cpu", split="test", temperature=temperature)


def grid(models: dict[str, object], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    fig, axes = plt.subplots(len(models), len(TEMPERATURES), figsize=(3.2 * len(TEMPERATURES), 3.4 * len(models)))
    for i, (label, model) in enumerate(models.items()):
        for j, t in enumerate(TEMPERATURES):
            with torch.no_grad():
                x = model.sample(36, generator=torch.Generator().manual_seed(1), temperature=t).clamp(0, 1)
            ax = axes[i][j]
            ax.imshow(make_grid(x, nrow=6, padding=1).permute(1, 2, 0).numpy())
            ax.set_title(f"{label}, T = {t:g}", fontsize=10)
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def summarise(name: str, root: Path, dataset) -> dict:
    from flowgan.runs import load_run

    meta = json.loads((root / "reproduce.json").read_text())
    cal = meta.get("calibration", {})
    out = {"generator": name, "modules": meta.get("modules"), "steps": meta.get("steps"), "objectives": {}}
    models = {}
    for obj, label in OBJECTIVES.items():
        ev = json.loads((root / "eval" / f"{obj}.json").read_text())
        bn, bs = ev["best_nll"], ev["best_score"]
        loaded = load_run(root / "runs" / obj, "best_nll", device="cpu")  # the checkpoint of the NLL column
        loaded.model.eval()
        models[label] = loaded.model
        stage = meta["stages"].get(f"train-{obj}", {})
        out["objectives"][obj] = {
            "test_nll_bpd": bn["test_nll_bpd"],
            "test_nll_sem_bpd": bn.get("test_nll_sem_bpd"),
            "nll_step": bn["step"],
            "score": bs["score"],
            "score_std": (bs.get("scores") or {}).get("is_std"),
            "score_step": bs["step"],
            "seconds_per_update": (cal.get("step_seconds") or {}).get(obj),
            "stage_minutes": stage.get("seconds", 0) / 60,
            "updates": stage.get("steps"),
            "diverged": stage.get("status") == "diverged",
            "scores_at_temperature": {str(t): score_at(loaded.model, dataset, t) for t in TEMPERATURES},
        }
    grid(models, HERE / f"samples_{name}.png", f"{name} on cifar10-5k: best-validated checkpoints at temperature T")
    copy = HERE / name
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    for item in ("report.md", "claims.json", "reproduce.json", "figures", "eval"):
        src = root / item
        if src.is_dir():
            shutil.copytree(src, copy / item)
        elif src.is_file():
            shutil.copy2(src, copy / item)
    return out


def _is_cell(s: dict) -> str:
    bad = s.get("nonfinite_samples") or 0
    if bad:  # the score of a sample set with NaN/Inf images is undefined (flowgan.metrics.evaluate)
        return f"— ({bad} of {s['score_samples']} samples non-finite)"
    return f"{s['is']:.2f} ± {s['is_std']:.2f}"


def table(results: list[dict], classifier_name: str) -> str:
    lines = [
        "| generator | objective | test NLL (bits/dim) | IS, T = 1 | IS, T = 0.7 | IS, T = 0.5 | best IS (step) "
        "| s/update | updates |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for obj, label in OBJECTIVES.items():
            o = r["objectives"][obj]
            t = o["scores_at_temperature"]
            sem = f" ± {o['test_nll_sem_bpd']:.3f}" if o.get("test_nll_sem_bpd") is not None else ""
            step0 = " (step 0, untrained)" if o["nll_step"] == 0 else ""
            lines.append(
                f"| {r['generator']} | {label} | {o['test_nll_bpd']:.3f}{sem}{step0} | "
                + " | ".join(_is_cell(t[str(x)]) for x in (1.0, 0.7, 0.5))
                + f" | {o['score']:.2f} ± {o['score_std']:.2f} ({o['score_step']}) | {o['seconds_per_update']:.3f} "
                f"| {o['updates']} of {r['steps']}{' (diverged)' if o['diverged'] else ''} |"
            )
    lines += [
        "",
        f"IS at T: Inception-style score of the classifier {classifier_name}, 2,000 samples of the best-validated "
        "checkpoint (the one of the NLL column; fixed seed) at sampling temperature T, ± the 10-split standard "
        "deviation. Best IS: the report's, of the best-score checkpoint (its step). Test NLL: the best-validated "
        "checkpoint on the 1,000 test images, ± its standard error. s/update: the reproduction's calibration (3 timed "
        "updates, this machine, its load at the time). Updates: those trained before the run ended or diverged.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="a reproduction directory")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--table-only", action="store_true", help="rewrite table.md from results.json")
    p.add_argument("--grids-only", action="store_true", help="redraw the sample grids of the --run directories")
    args = p.parse_args()
    if args.grids_only:  # redraw the sample grids of the runs given (no scoring)
        from flowgan.runs import load_run

        for name, d in (r.split("=", 1) for r in args.run):
            models = {}
            for obj, label in OBJECTIVES.items():
                models[label] = load_run(Path(d) / "runs" / obj, "best_nll", device="cpu").model.eval()
            title = f"{name} on cifar10-5k: best-validated checkpoints at temperature T"
            grid(models, HERE / f"samples_{name}.png", title)
        return
    if args.table_only:
        saved = json.loads((HERE / "results.json").read_text())
        (HERE / "table.md").write_text(table(saved["runs"], saved["classifier"]["classifier"]))
        return
    from flowgan.data import load_dataset
    from flowgan.metrics.classifiers import find_classifier

    torch.set_grad_enabled(False)
    dataset = load_dataset("cifar10-5k", args.data_dir)
    classifier = find_classifier(dataset)
    results = [summarise(name, Path(d), dataset) for name, d in (r.split("=", 1) for r in args.run)]
    (HERE / "results.json").write_text(
        json.dumps({"classifier": classifier.summary(), "runs": results}, indent=2) + "\n"
    )
    (HERE / "table.md").write_text(table(results, classifier.describe()))
    print((HERE / "table.md").read_text())


if __name__ == "__main__":
    main()
