"""``report.md`` and its figures, built only from what a reproduction directory holds on disk
(read by :class:`~.inputs.ReproductionData`; see :mod:`.inputs` for the files).

Outputs: ``DIR/report.md``, ``DIR/figures/*.png`` and ``DIR/claims.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..atomic import write_text
from . import claims as C
from .figures import copy_figure, figure_curves, figure_samples, figure_scores
from .frontier import frontier_report
from .inputs import ReproductionData, fmt
from .presets import LABELS, OBJECTIVES, PRESETS


def compute_claims(d: ReproductionData) -> list[C.Claim]:
    results = d.claim_inputs()
    return [
        C.check_c1(d.evals, d.trains, d.dim),
        C.check_c2(results, d.unit, d.score),
        C.check_c3(d.gmm),
        C.check_c4(d.table3),
        C.check_c5(d.jacobian, LABELS),
        C.check_c6(results, d.paper_name),
    ]


# ----------------------------------------------------------------------------------- markdown


def _table_main(d: ReproductionData) -> list[str]:
    paper = d.paper["table"]
    sname = d.paper["score_name"]
    u = "nats" if d.unit == "nats" else "bits/dim"
    tnum = "1" if d.paper_name == "mnist" else "2"
    lines = [
        f"## Table {tnum} analog: best {sname} score and test NLL",
        "",
        f"Score: the best-{d.score} checkpoint re-scored on more samples, ± the standard deviation over 10 splits "
        "(best during training in brackets). Test NLL: the best-validated checkpoint (lowest validation NLL) on the "
        "whole test split, exact, fixed dequantization noise.",
        "",
        f"| Objective | {sname} score | Test NLL (nats) | Test NLL (bits/dim) | checkpoint step (score / NLL) | paper "
        f"{sname} | paper NLL ({u}) |",
        "|---|---|---|---|---|---|---|",
    ]
    untrained, floored, classifiers = [], [], set()
    for obj in OBJECTIVES:
        r = d.results.get(obj) or {}
        bs, bn = r.get("best_score", {}), r.get("best_nll", {})
        during = max((e[d.score] for e in d.evals[obj] if isinstance(e.get(d.score), (int, float))), default=None)
        lam = d.configs[obj].lam if d.configs[obj] else None
        name = LABELS[obj] + (f" (λ = {lam:g})" if obj == "hybrid" and lam is not None else "")
        p = paper[obj]
        sd = (bs.get("scores") or {}).get(f"{d.score}_std")
        score_cell = (
            f"{fmt(bs.get('score'), '.2f')}"
            + (f" ± {fmt(sd, '.2f')}" if isinstance(sd, (int, float)) else "")
            + f" [{fmt(during, '.2f')}]"
        )
        if C.at_floor(d.score, bs.get("score")):
            floored.append(f"{LABELS[obj]} ({fmt(bs.get('score'), '.3f')})")
        clf = (bs.get("scores") or {}).get("classifier")
        if clf:
            classifiers.add(clf)
        steps_cell = f"{bs.get('step', '—')} / {bn.get('step', '—')}"
        lines.append(
            f"| {name} | {score_cell} | {fmt(bn.get('test_nll_nats'), '.1f')} | {fmt(bn.get('test_nll_bpd'), '.3f')} "
            f"| {steps_cell} | {p['score']:.2f} | {p['nll']:.2f} |"
        )
        if bn.get("step") == 0:
            untrained.append((LABELS[obj], bn.get("val_nll_nats"), bn.get("val_nll_bpd")))
    if classifiers:
        lines += ["", "Scores computed with the classifier " + "; ".join(sorted(classifiers)) + "."]
    if floored:
        lines += [
            "",
            f"**At the floor:** the {sname} score of {', '.join(floored)} is {C.floor_words(d.score)}. "
            "Such a score does not rank models; read the samples (Figure 1).",
        ]
    for label, nats, bpd in untrained:
        # NICE's zero-initialised couplings start as the uniform density on [0, 1]^D (0 nats);
        # Real-NVP's logit preprocessing does not, so the value is stated, not assumed.
        uniform = isinstance(nats, (int, float)) and abs(nats) < 1e-6
        why = ""
        if uniform:
            why = " (the zero-initialised couplings start the flow as the uniform density on [0, 1]^D)"
        lines += [
            "",
            f"**Note:** the best-validated checkpoint of {label} is the untrained model of step 0, "
            f"validation NLL {fmt(nats, '.1f')} nats ({fmt(bpd, '.3f')} bits/dim){why}: "
            "this objective's validation NLL never went below its starting value "
            "(see Figure 2 for the values reached in training).",
        ]
    return lines


def _collapse_section(d: ReproductionData) -> list[str]:
    """Collapse diagnostics (flowgan.metrics.collapse) at each run's best-score and last evaluation."""
    rows = []
    for obj in OBJECTIVES:
        evals = [e for e in d.evals[obj] if isinstance(e.get("near_duplicate_share"), (int, float))]
        if not evals:
            continue
        best_step = ((d.results.get(obj) or {}).get("best_score") or {}).get("step")
        picks = [("best score", next((e for e in evals if e.get("step") == best_step), None)), ("last", evals[-1])]
        for which, e in picks:
            if e is None:
                continue
            rows.append(
                f"| {LABELS[obj]} | {which} (step {e['step']}) | {fmt(e['near_duplicate_share'], '.3f')} | "
                f"{fmt(e['saturated_share'], '.4f')} | {e.get('classes_covered', '—')} |"
            )
    if not rows:
        return []
    n = next(e.get("collapse_samples") for obj in OBJECTIVES for e in d.evals[obj] if e.get("collapse_samples"))
    return [
        "## Collapse diagnostics",
        "",
        f"Of {n} samples at the evaluation of the best-score checkpoint and at the last one: the share of samples "
        "whose nearest other sample is within L2 1.5 (pixels in [0, 1]; a collapsed generator is near 1), the share "
        "of pixels within 1e-6 of 0 or 1 (saturated: no gradient passes), and the number of classes that the score "
        "classifier gives at least 1% of the samples.",
        "",
        "| Objective | evaluation | near-duplicate share | saturated pixels | classes ≥ 1% |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _table3(d: ReproductionData) -> list[str]:
    lines = ["## Table 3 analog: exact NLL against AIS and KDE estimates (nats)", ""]
    t = d.table3
    if not t:
        return lines + ["Not available (the likelihood analysis has not run)."]
    p3 = d.paper.get("table3")
    by_label = {r["label"]: r for r in t["runs"]}
    head = "| Objective | Flow-GAN NLL (exact) | AIS | KDE |" + (" paper exact / AIS / KDE |" if p3 else "")
    lines += [
        f"{t.get('n_test', '?')} test images of {t.get('dataset', '?')}; checkpoints with the best sample score "
        "(as in §5).",
        "",
        head,
        "|---|---|---|---|" + ("---|" if p3 else ""),
    ]
    for obj in OBJECTIVES:
        r = by_label.get(LABELS[obj])
        if not r:
            continue
        cells = [fmt(r.get(m, {}).get("nll_nats"), ".1f") for m in ("exact", "ais", "kde")]
        extra = f" {p3[obj]['exact']:.1f} / {p3[obj]['ais']:.1f} / {p3[obj]['kde']:.1f} |" if p3 else ""
        lines.append(f"| {LABELS[obj]} | " + " | ".join(cells) + " |" + extra)
    rt = t.get("rankings_text", {})
    lines += [
        "",
        "Rankings (best first): "
        + "; ".join(f"{m.upper() if m != 'exact' else 'exact'}: {rt[m]}" for m in ("exact", "ais", "kde") if m in rt),
    ]
    if p3:
        lines.append("Paper: exact MLE > Hybrid > ADV; AIS ADV > Hybrid > MLE; KDE Hybrid > MLE > ADV.")
    s = t.get("settings", {})
    if s:
        lines.append(f"Settings: AIS {s.get('ais')}, KDE {s.get('kde')}.")
    return lines


def _jacobian_section(d: ReproductionData, fig: Path | None) -> list[str]:
    lines = ["## Figure 4 analog: singular values of the generator's Jacobian", ""]
    j = d.jacobian
    if not j:
        return lines + ["Not available (the Jacobian analysis has not run)."]
    if fig:
        lines += [f"![Figure 4]({fig.relative_to(d.root)})", ""]
    pl = d.paper.get("mean_logdet", {})
    lines += [
        "| Objective | mean log\\|det dG/dz\\| (exact, from the flow) | Σ log s (from the singular values) | 5–95% "
        "range of log10 s | paper mean log\\|det\\| |",
        "|---|---|---|---|---|",
    ]
    by_label = {r["label"]: r for r in j.get("runs", [])}
    for obj in OBJECTIVES:
        r = by_label.get(LABELS[obj])
        if not r:
            continue
        q = r.get("log10_singular_value_quantiles", {})
        rng = (q.get("q95", math.nan) - q.get("q05", math.nan)) if q else math.nan
        lines.append(
            f"| {LABELS[obj]} | {fmt(r.get('mean_logdet_flow'), '.1f')} | "
            f"{fmt(r.get('mean_logdet'), '.1f', '−∞ (underflow)')} | {fmt(rng, '.2f')} | {fmt(pl.get(obj), '.2f')} |"
        )
    lines.append(
        f"\n{j.get('n_samples', '?')} prior samples per run. Where the generator saturates pixels, singular values "
        "underflow to 0 and their log-sum is −∞, and an SVD resolves the tiny singular values of an ill-conditioned "
        "Jacobian only relative to the largest one, so their log-sum can differ; the flow's layer-by-layer log-det "
        "stays exact (and is what the figure's legend and claim C5 use)."
    )
    return lines


def _gmm_section(d: ReproductionData, fig: Path | None, grids: list[Path]) -> list[str]:
    lines = ["## Figures 3/6 and 7 analog: the Gaussian-mixture baseline against ADV", ""]
    g = d.gmm
    if not g:
        return lines + ["Not available (the mixture baseline has not run)."]
    if fig:
        lines += [f"![Figure 3/6]({fig.relative_to(d.root)})", ""]
    lines.append(
        f"{g.get('n_components', '?')} centres; best σ = {fmt(g.get('best_sigma'), '.4g')}: validation NLL "
        f"{fmt(g.get('best_val_nll_nats'), '.1f')} nats ({fmt(g.get('best_val_nll_bpd'), '.3f')} bits/dim)"
        + (f", test NLL {fmt(g.get('test_nll_nats'), '.1f')} nats." if "test_nll_nats" in g else ".")
    )
    a = g.get("against") or {}
    if a:
        run_nll, best_nll = a.get("nll_nats"), g.get("best_val_nll_nats")
        best_beats = isinstance(run_nll, (int, float)) and isinstance(best_nll, (int, float)) and best_nll < run_nll
        lines.append(
            f"ADV's best {g.get('score_name')} {fmt(a.get('best_score'), '.3f')} at step {a.get('best_score_step')}, "
            f"validation NLL there {fmt(run_nll, '.1f')} nats. On the σ grid (scores are measured on the grid only) "
            f"the mixture is better on NLL at σ ∈ {_sigma_set(g.get('beats_nll', []))} and on both NLL and score at σ "
            f"∈ {_sigma_set(g.get('beats_both', []))} (scores compared as point estimates here; claim C3 says "
            f"where the score is better beyond its uncertainty); the best σ = {fmt(g.get('best_sigma'), '.3g')} of "
            f"the refined search is {'better' if best_beats else 'not better'} than ADV on NLL."
        )
        if C.at_floor(g.get("score_name"), a.get("best_score")):
            lines.append(f"ADV's best {g.get('score_name')} is {C.floor_words(g.get('score_name'))}.")
    if g.get("scores_note"):
        lines.append(f"Note: {g['scores_note']}")
    for p in grids:
        sigma = _grid_sigma(p)
        why = ""
        if (
            sigma is not None
            and isinstance(g.get("best_sigma"), (int, float))
            and abs(sigma - g["best_sigma"]) <= 1e-3 * g["best_sigma"]
        ):
            why = " (the best σ on validation NLL)"
        elif sigma is not None and g.get("beats_both") and abs(sigma - max(g["beats_both"])) <= 1e-3 * sigma:
            why = " (the largest σ where the mixture beats ADV on both, as point estimates)"
        label = f"σ = {sigma:.3g}{why}" if sigma is not None else p.stem
        lines += [
            "",
            f"Figure 7 analog: mixture samples at {label}.",
            "",
            f"![Figure 7: mixture samples at {label}]({p.relative_to(d.root)})",
        ]
    return lines


def _sigma_set(sigmas) -> str:
    return "{" + ", ".join(f"{s:.3g}" for s in sorted(sigmas)) + "}" if sigmas else "∅ (no grid value)"


def _grid_sigma(path: Path) -> float | None:
    """The σ of a ``…samples_sigma_<σ>.png`` grid."""
    try:
        return float(path.stem.rsplit("sigma_", 1)[1])
    except (IndexError, ValueError):
        return None


def _settings_section(d: ReproductionData) -> list[str]:
    m = d.meta
    lines = [f"# Flow-GAN reproduction: preset `{m.get('preset', '?')}`", ""]
    if m.get("description"):
        lines += [m["description"] + ".", ""]
    preset = PRESETS.get(m.get("preset", ""))
    if preset is not None and isinstance(m.get("steps"), int) and m["steps"] != preset.steps:
        lines += [
            f"This run: `--steps {m['steps']}` generator updates per objective "
            f"(the preset's default is {preset.steps:,}).",
            "",
        ]
    swapped = {k: v for k, v in (m.get("modules") or {}).items() if isinstance(v, str)}
    if swapped:  # the description names the preset's own modules
        names = ", ".join(f"`--{k} {v}`" for k, v in swapped.items())
        lines += [f"This run: {names} in place of the preset's ({'; '.join(swapped)} named in the table below).", ""]
    lines += ["| | MLE | ADV | Hybrid |", "|---|---|---|---|"]
    rows = {
        "objective": lambda c, e: "—" if c is None else c.objective + (f", λ = {c.lam:g}" if c.adversarial else ""),
        "model / critic": lambda c, e: "— / —" if c is None else f"{c.model} / {c.critic if c.adversarial else '—'}",
        "dataset": lambda c, e: "—" if c is None else c.dataset,
        "lr, β1, batch": lambda c, e: "—, —, —" if c is None else f"{c.lr}, {c.beta1}, {c.batch_size}",
        "generator steps": lambda c, e: str(e[-1]["step"]) if e else "—",
    }
    for name, f in rows.items():
        lines.append(f"| {name} | " + " | ".join(f(d.configs[o], d.evals[o]) for o in OBJECTIVES) + " |")
    stages = m.get("stages", {})
    if stages:
        total = sum(s.get("seconds", 0) for s in stages.values())
        walls = [f"{LABELS[o]} {fmt(d.evals[o][-1]['time'] / 60, '.1f')}" for o in OBJECTIVES if d.evals[o]]
        lines += [
            "",
            "Timings (they depend on the machine and its load; the numbers above do not): "
            + ("training wall time " + ", ".join(walls) + " min; " if walls else "")
            + "stages: "
            + ", ".join(f"{k} {v.get('status')} ({v.get('seconds', 0) / 60:.1f} min)" for k, v in stages.items())
            + f"; total {total / 60:.1f} min.",
        ]
    return lines


def _incomplete(d: ReproductionData) -> list[str]:
    """The banner at the top of a report whose training the safety net cut (or that has not
    finished), and the note on runs that diverged."""
    stages = d.meta.get("stages", {})
    planned = d.meta.get("steps")
    diverged = [
        f"{LABELS[o]} after update {stages[f'train-{o}'].get('steps', '?')} of {planned} "
        f"({stages[f'train-{o}'].get('stopped_by', 'non-finite values')})"
        for o in OBJECTIVES
        if stages.get(f"train-{o}", {}).get("status") == "diverged"
    ]
    note = (
        [
            f"> **DIVERGED**: {'; '.join(diverged)} (training stops at a NaN or Inf). Its numbers are "
            "those of its last good checkpoints (best-validated, best-score), and its learning curves end there.",
            "",
        ]
        if diverged
        else []
    )
    cut = []
    for o in OBJECTIVES:
        st = stages.get(f"train-{o}", {})
        if st.get("status") == "cut" or (
            st.get("stopped_by") == "time_limit" and planned and st.get("steps", planned) < planned
        ):
            cut.append(f"{LABELS[o]} {st.get('steps', '?')} of {st.get('planned_steps', planned)} updates")
    if not cut:
        return note
    budget = d.meta.get("budget_minutes")
    return note + [
        f"> **INCOMPLETE**: the time limit (a safety net: --budget-minutes {budget}) cut training: {'; '.join(cut)}. "
        "The objectives were not trained for the same number of updates, and the tables and verdicts below are not "
        "those of the preset. Re-run the same command with a larger --budget-minutes to finish.",
        "",
    ]


def build_report(root: str | Path) -> Path:
    """Write ``report.md``, ``claims.json`` and ``figures/`` of a reproduction directory."""
    d = ReproductionData(root)
    figdir = d.root / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    f1 = figure_samples(d, figdir / "fig1_samples.png")
    f2 = figure_curves(d, figdir / "fig2_nll_curves.png")
    f5 = figure_scores(d, figdir / "fig5_scores.png")
    f3 = copy_figure(d.root / "gmm" / "gmm_vs_run.png", figdir / "fig3_mixture_vs_adv.png")
    f4 = copy_figure(d.root / "jacobian" / "figure4.png", figdir / "fig4_singular_values.png")
    grids = []
    for i, p in enumerate(sorted((d.root / "gmm").glob("samples_sigma_*.png"))):
        grids.append(copy_figure(p, figdir / f"fig7_mixture_{p.stem}.png"))
    claims = compute_claims(d)
    md = _settings_section(d)
    banner = _incomplete(d)
    if banner:
        md = md[:2] + banner + md[2:]
    md += ["", *_table_main(d), "", *_collapse_section(d)]
    for fig, title in ((f1, "Figure 1 analog"), (f2, "Figure 2 analog"), (f5, "Figure 5 analog")):
        md += [f"![{title}]({fig.relative_to(d.root)})", ""] if fig else [f"{title}: not available.", ""]
    md += [*_gmm_section(d, f3, [g for g in grids if g]), ""]
    md += [*_table3(d), ""]
    md += [*_jacobian_section(d, f4), ""]
    md += frontier_report(d, figdir)
    md += [
        "## Claims",
        "",
        "Each claim is checked with fixed thresholds (see `flowgan.reproduce.claims`); a FAIL is reported as such. A "
        "comparison counts only when the difference exceeds its uncertainty (the 10-split standard deviation of a "
        "score, the standard error of a test NLL); otherwise the claim is INCONCLUSIVE. Each objective is trained "
        "once here, so the seed-to-seed spread is not measured: `flowgan reproduce --seeds N` judges the claims over "
        "N seeds.",
        "",
        "| | Claim | Verdict | Numbers |",
        "|---|---|---|---|",
    ]
    for c in claims:
        md.append(f"| {c.key} | {c.statement} | **{c.verdict}** | {c.evidence} |")
    notes = list(d.meta.get("notes") or [])
    notes += [
        f"{n} malformed record(s) of {where} skipped when this report was built" for where, n in d.skipped.items()
    ]
    if notes:
        md += ["", "## Notes", "", *[f"* {n}" for n in notes]]
    write_text(d.root / "claims.json", json.dumps([c.__dict__ for c in claims], indent=2, default=str) + "\n")
    return write_text(d.root / "report.md", "\n".join(md) + "\n")  # last: what a reader opens
