"""``report.md`` of a multi-seed reproduction (:mod:`.seeds`), built only from what ``DIR`` holds.

Inputs: ``DIR/reproduce.json`` (``seeds``: N) and the one-seed reproductions ``DIR/seed-K``; each
seed's report is rebuilt first (:func:`~.report.build_report`), so its ``claims.json`` is current.
Outputs: ``DIR/report.md``, ``DIR/claims.json`` (the claims over the seeds, with each seed's verdict
and evidence), ``DIR/seeds.json`` (every table number of every seed, with mean and standard
deviation) and ``DIR/figures/``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from .figures import copy_figure, figure_tradeoff
from .frontier import drawn_frontier, frontier_points
from .inputs import ReproductionData, fmt, read_reproduction_meta
from .presets import LABELS, OBJECTIVES

CLAIM_RULE = (
    "A claim PASSes over the seeds when it passes in every seed and FAILs when it fails in every seed (each seed's "
    "verdict is itself decided beyond that run's measurement uncertainty); when the seeds disagree, or a seed is "
    "inconclusive, the seed-to-seed spread is larger than the effect and the claim is INCONCLUSIVE."
)


def seed_dir(root: Path, k: int) -> Path:
    return root / f"seed-{k}"


# ------------------------------------------------------------------------------------- numbers


def spread(values: list[float | None]) -> dict[str, Any]:
    """``{"mean", "sd", "n", "values"}`` of the finite values (sd: ``correction=1``; None below 2)."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return {
        "mean": statistics.fmean(finite) if finite else None,
        "sd": statistics.stdev(finite) if len(finite) >= 2 else None,
        "n": len(finite),
        "values": list(values),
    }


def combine_verdicts(verdicts: list[str]) -> str:
    """The verdict of a claim over seeds (see :data:`CLAIM_RULE`)."""
    if all(v == "N/A" for v in verdicts):
        return "N/A"
    if all(v == "PASS" for v in verdicts):
        return "PASS"
    if all(v == "FAIL" for v in verdicts):
        return "FAIL"
    return "INCONCLUSIVE"


def combine_claims(per_seed: list[list[dict]]) -> list[dict]:
    """Claims over seeds from each seed's ``claims.json`` (a list of claim dicts per seed)."""
    keys = [c["key"] for c in per_seed[0]] if per_seed else []
    out = []
    for key in keys:
        rows = [next((c for c in claims if c.get("key") == key), None) for claims in per_seed]
        verdicts = [r["verdict"] if r else "N/A" for r in rows]
        verdict = combine_verdicts(verdicts)
        listed = ", ".join(f"seed {k} {v}" for k, v in enumerate(verdicts))
        why = {
            "PASS": "passes in every seed",
            "FAIL": "fails in every seed",
            "N/A": "no seed has its inputs",
            "INCONCLUSIVE": "the seeds disagree or are inconclusive: the effect is within the seed-to-seed spread",
        }[verdict]
        statement = next((r["statement"] for r in rows if r), "")
        out.append(
            {
                "key": key,
                "statement": statement,
                "verdict": verdict,
                "evidence": f"{why} ({listed})",
                "per_seed": verdicts,
                "per_seed_evidence": [r["evidence"] if r else None for r in rows],
            }
        )
    return out


def _pm(s: dict[str, Any], spec: str) -> str:
    """``mean ± sd`` of a :func:`spread` (and ``(n of N)`` where some seeds lack the number)."""
    text = fmt(s["mean"], spec) + (f" ± {fmt(s['sd'], spec)}" if s["sd"] is not None else "")
    missing = len(s["values"]) - s["n"]
    return text + (f" ({s['n']} of {len(s['values'])} seeds)" if missing else "")


def _seed_numbers(d: ReproductionData) -> dict[str, Any]:
    """The numbers of one seed's tables: main table, Table 3, Figure 4, the mixture, the frontier."""
    from .frontier import point_of

    table = {o: (point_of(d.results[o], d.unit) if d.results.get(o) else None) for o in OBJECTIVES}
    t3 = {
        r["label"]: {m: (r.get(m) or {}).get("nll_nats") for m in ("exact", "ais", "kde")}
        for r in (d.table3 or {}).get("runs", [])
    }
    jac = {}
    for r in (d.jacobian or {}).get("runs", []):
        q = r.get("log10_singular_value_quantiles") or {}
        jac[r["label"]] = {
            "mean_logdet": r.get("mean_logdet_flow"),
            "spread": q["q95"] - q["q05"] if {"q05", "q95"} <= set(q) else None,
        }
    lambdas = d.meta.get("frontier") or []
    frontier = {str(p["lam"]): p for p in frontier_points(d.root, d.results, lambdas, d.unit)} if lambdas else {}
    return {
        "table": table,
        "table3": t3,
        "jacobian": jac,
        "gmm_best_val_nll_nats": (d.gmm or {}).get("best_val_nll_nats"),
        "frontier": frontier,
    }


def _get(numbers: list[dict], *path) -> dict[str, Any]:
    values = []
    for n in numbers:
        v: Any = n
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        values.append(v)
    return spread(values)


def build_seed_report(root: str | Path) -> Path:
    from .report import build_report

    root = Path(root)
    meta, _ = read_reproduction_meta(root / "reproduce.json")
    n = int(meta.get("seeds") or 0)
    if n < 2:
        from ..errors import FlowganError

        raise FlowganError(f"{root} is not a multi-seed reproduction (its reproduce.json has no seeds >= 2)")
    dirs = [seed_dir(root, k) for k in range(n)]
    for p in dirs:
        if (p / "reproduce.json").is_file():
            build_report(p)
    datas = [ReproductionData(p) for p in dirs]
    numbers = [_seed_numbers(d) for d in datas]
    per_seed_claims = [
        json.loads((p / "claims.json").read_text()) if (p / "claims.json").is_file() else [] for p in dirs
    ]
    claims = combine_claims(per_seed_claims)
    d0 = datas[0]
    figdir = root / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    summary = {
        "table": {
            o: {k: _get(numbers, "table", o, k) for k in ("score", "nll", "score_step", "nll_step")} for o in OBJECTIVES
        },
        "unit": d0.unit,
        "score": d0.score,
    }
    write_json(
        root / "seeds.json",
        {"seeds": list(range(n)), "per_seed": numbers, "summary": summary},
        sort_keys=True,
    )
    md = _header(root, meta, datas)
    md += _main_table(d0, summary, numbers, n)
    md += _spread_figure(d0, numbers, figdir, root)
    md += _seed0_figures(root, figdir, n)
    md += _analyses(numbers, d0)
    md += _frontier(d0, numbers, meta, figdir, root)
    md += [
        "## Claims over the seeds",
        "",
        CLAIM_RULE + " Each seed's evidence is in its own report (`seed-K/report.md`) and in `claims.json`.",
        "",
        "| | Claim | Verdict | per seed |",
        "|---|---|---|---|",
    ]
    for c in claims:
        md.append(f"| {c['key']} | {c['statement']} | **{c['verdict']}** | {', '.join(c['per_seed'])} |")
    write_text(root / "claims.json", json.dumps(claims, indent=2) + "\n")
    return write_text(root / "report.md", "\n".join(md) + "\n")


def _header(root: Path, meta: dict, datas: list[ReproductionData]) -> list[str]:
    n = len(datas)
    lines = [f"# Flow-GAN reproduction: preset `{meta.get('preset', '?')}`, {n} seeds", ""]
    if meta.get("description"):
        lines += [meta["description"] + ".", ""]
    lines += [
        f"Each objective trained {n} times, with training seeds 0 … {n - 1} (`flowgan reproduce --seeds {n}`); each "
        "seed is a complete reproduction with its own report in `seed-K/report.md`. Numbers below are the mean ± the "
        f"standard deviation across the {n} seeds; every seed's value is in `seeds.json`.",
        "",
    ]
    cut, missing, times = [], [], []
    for k, d in enumerate(datas):
        stages = d.meta.get("stages", {})
        if not stages.get("report", {}).get("status") == "done":
            missing.append(str(k))
        for o in OBJECTIVES:
            if stages.get(f"train-{o}", {}).get("status") == "cut":
                cut.append(f"seed {k} {LABELS[o]}")
        total = sum(s.get("seconds", 0) for s in stages.values())
        times.append(f"seed {k} {total / 60:.1f} min")
    if cut or missing:
        what = (f"training cut by the safety net: {', '.join(cut)}. " if cut else "") + (
            f"Seeds not finished: {', '.join(missing)}. " if missing else ""
        )
        lines += [f"> **INCOMPLETE**: {what}Re-run the same command to finish.", ""]
    lines += [f"Wall time per seed (this machine, its load): {', '.join(times)}.", ""]
    return lines


def _main_table(d0: ReproductionData, summary: dict, numbers: list[dict], n: int) -> list[str]:
    sname, u = d0.paper["score_name"], "nats" if d0.unit == "nats" else "bits/dim"
    spec = ".1f" if d0.unit == "nats" else ".3f"
    tnum = "1" if d0.paper_name == "mnist" else "2"
    lines = [
        f"## Table {tnum} analog over {n} seeds: best {sname} score and test NLL",
        "",
        f"As in a one-seed report (score of the best-{d0.score} checkpoint, test NLL of the best-validated one), "
        "mean ± standard deviation across seeds; then each seed's value.",
        "",
        f"| Objective | {sname} score | test NLL ({u}) | score per seed | test NLL per seed | paper {sname} "
        "| paper NLL |",
        "|---|---|---|---|---|---|---|",
    ]
    clfs = {((d.get("best_score") or {}).get("scores") or {}).get("classifier") for d in d0.results.values() if d}
    for o in OBJECTIVES:
        s, nll = summary["table"][o]["score"], summary["table"][o]["nll"]
        p = d0.paper["table"][o]
        lines.append(
            f"| {LABELS[o]} | {_pm(s, '.2f')} | {_pm(nll, spec)} | {', '.join(fmt(v, '.2f') for v in s['values'])} | "
            f"{', '.join(fmt(v, spec) for v in nll['values'])} | {p['score']:.2f} | {p['nll']:.2f} |"
        )
    clfs.discard(None)
    if clfs:
        lines += ["", "Scores computed with the classifier " + "; ".join(sorted(clfs)) + " (seed 0's record)."]
    return lines + [""]


def _spread_figure(d0: ReproductionData, numbers: list[dict], figdir: Path, root: Path) -> list[str]:
    points = []
    for o in OBJECTIVES:
        for k, num in enumerate(numbers):
            p = num["table"].get(o)
            if p:
                points.append(dict(p, label=f"s{k}", group=LABELS[o]))
    fig = figure_tradeoff(
        points,
        figdir / "seeds_nll_vs_score.png",
        title="Every seed's run: test NLL against the score (± 10-split s.d., ± s.e.); sK = seed K",
        score_name=d0.score,
        unit=d0.unit,
    )
    if not fig:
        return []
    return ["![every seed](figures/seeds_nll_vs_score.png)", ""]


def _seed0_figures(root: Path, figdir: Path, n: int) -> list[str]:
    lines = [
        f"## Figures of seed 0 (of {n})",
        "",
        "The figures below show seed 0 only; every seed's are in `seed-K/figures/`.",
        "",
    ]
    for name, title in (
        ("fig1_samples.png", "Figure 1 analog, seed 0"),
        ("fig2_nll_curves.png", "Figure 2 analog, seed 0"),
        ("fig5_scores.png", "Figure 5 analog, seed 0"),
        ("fig3_mixture_vs_adv.png", "Figures 3/6 analog, seed 0"),
        ("fig4_singular_values.png", "Figure 4 analog, seed 0"),
    ):
        dst = copy_figure(root / "seed-0" / "figures" / name, figdir / f"seed0_{name}")
        if dst:
            lines += [f"![{title}]({dst.relative_to(root)})", ""]
    return lines


def _analyses(numbers: list[dict], d0: ReproductionData) -> list[str]:
    lines = []
    labels = [LABELS[o] for o in OBJECTIVES]
    if any(num["table3"] for num in numbers):
        lines += [
            "## Table 3 analog over the seeds: exact NLL, AIS and KDE (nats, mean ± sd)",
            "",
            "| Objective | exact | AIS | KDE |",
            "|---|---|---|---|",
        ]
        for lab in labels:
            cells = [_pm(_get(numbers, "table3", lab, m), ".1f") for m in ("exact", "ais", "kde")]
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        lines.append("")
    if any(num["jacobian"] for num in numbers):
        lines += [
            "## Figure 4 analog over the seeds: the generator's Jacobian (mean ± sd)",
            "",
            "| Objective | mean log\\|det dG/dz\\| (exact) | 5–95% range of log10 s |",
            "|---|---|---|",
        ]
        for lab in labels:
            lines.append(
                f"| {lab} | {_pm(_get(numbers, 'jacobian', lab, 'mean_logdet'), '.1f')} | "
                f"{_pm(_get(numbers, 'jacobian', lab, 'spread'), '.2f')} |"
            )
        lines.append("")
    g = _get(numbers, "gmm_best_val_nll_nats")
    if g["n"]:
        lines += [f"Gaussian-mixture baseline, best validation NLL: {_pm(g, '.1f')} nats.", ""]
    return lines


def _frontier(d0: ReproductionData, numbers: list[dict], meta: dict, figdir: Path, root: Path) -> list[str]:
    lambdas = meta.get("frontier") or []
    if not lambdas:
        return []
    keys = ["None", *[str(float(v)) for v in sorted(lambdas, reverse=True)], "0.0"]  # MLE (λ → ∞), the hybrids, ADV
    points = []
    for key in keys:
        rows = [num["frontier"].get(key) for num in numbers]
        rows = [r for r in rows if r]
        if not rows:
            continue
        s, nll = spread([r["score"] for r in rows]), spread([r["nll"] for r in rows])
        minutes = spread([r.get("train_minutes") for r in rows])["mean"]
        points.append(
            {
                "label": rows[0]["label"] + (f" ({len(rows)} seeds)" if len(rows) < len(numbers) else ""),
                "lam": rows[0]["lam"],
                "score": s["mean"],
                "score_std": s["sd"],
                "nll": nll["mean"],
                "nll_sem": nll["sd"],
                "train_minutes": minutes,
            }
        )
    section = drawn_frontier(
        points,
        lambdas,
        d0,
        figdir,
        root,
        group=f"mean over {len(numbers)} seeds",
        title=f"The λ frontier over {len(numbers)} seeds: mean ± s.d. across seeds",
        spread="± : the standard deviation across seeds.",
    )
    return [*section, ""]
