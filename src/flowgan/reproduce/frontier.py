"""The λ frontier: what the hybrid objective trades between likelihood and sample quality.

The hybrid objective (Eq. 7, §4) is ``V(G, D) - λ·E[log p(x)]``: λ = 0 is pure adversarial
training (ADV), λ → ∞ is maximum likelihood (MLE). The paper reports one λ per dataset (Table 1:
λ = 0.1 on MNIST; Table 2: λ = 1 on CIFAR-10). ``flowgan reproduce --frontier 0.01,0.1,1,10``
trains the hybrid at each λ with the preset's settings and update budget (the preset's own hybrid
run is reused where its λ is one of them, and a finished run of an earlier call is reused, not
retrained), evaluates each like the three objectives (:func:`~.evaluation.evaluate_run`: exact test
NLL ± its standard error, the sample score ± its 10-split standard deviation) and the report draws
test NLL against the score, one point per run, MLE and ADV beside them, the paper's Table 1
points marked for MNIST.

Files: ``DIR/runs/hybrid-lam<λ>/`` (training runs), ``DIR/frontier/lam-<λ>.json`` (evaluation,
like ``DIR/eval/<objective>.json``), ``DIR/frontier/lam-<λ>_samples.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json
from ..errors import FlowganError
from .inputs import fmt
from .presets import LABELS, OBJECTIVES

#: ``--frontier`` without values
DEFAULT_LAMBDAS = (0.01, 0.1, 1.0, 10.0)


def parse_lambdas(text: str) -> list[float]:
    """``"0.01,0.1,1,10"`` -> sorted distinct positive finite values (argparse type: raises ValueError's
    kin ``argparse.ArgumentTypeError`` with one line)."""
    import argparse

    values = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {part.strip()!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"every λ must be > 0 (λ = 0 is ADV, already trained), got {part.strip()}")
        values.append(v)
    return sorted(set(values))


def run_name(lam: float) -> str:
    return f"hybrid-lam{lam:g}"


def frontier_stage(rep, lambdas: list[float], *, say: Callable[[str], None]) -> dict:
    """Train and evaluate the hybrid at each λ (a :class:`~.pipeline.Reproduction`'s stage)."""
    from ..runtime import resolve_device
    from .evaluation import evaluate_run

    hybrid = rep.run_config("hybrid")
    out = rep.root / "frontier"
    out.mkdir(parents=True, exist_ok=True)
    status = "done"
    for lam in lambdas:
        if math.isclose(lam, hybrid.lam, rel_tol=1e-9):
            run = rep.root / "runs" / "hybrid"  # the preset's hybrid: trained by its own stage
            stage = rep.state["stages"].get("train-hybrid", {})
            diverged = stage.get("steps") if stage.get("status") == "diverged" else None
        else:
            run = rep.root / "runs" / run_name(lam)
            config = hybrid.replace(lam=lam, time_limit=rep._time_left("frontier"))
            record = rep.train_run(run, config, f"Hybrid λ = {lam:g}")
            if record["status"] == "cut":
                status = "cut"
            diverged = record["steps"] if record["status"] == "diverged" else None
        result = evaluate_run(
            run,
            rep._dataset_obj(),
            rep.preset.score,
            n_samples=rep.preset.score_samples,
            device=resolve_device(rep.device),
            progress=rep.progress,
            grid=out / f"lam-{lam:g}_samples.png",
        )
        write_json(out / f"lam-{lam:g}.json", {"lam": lam, "diverged_at": diverged, **result})
        say(
            f"  Hybrid λ = {lam:g}: test NLL {result['best_nll']['test_nll_nats']:.1f} nats, "
            f"{rep.preset.score} {result['best_score']['score']:.3f}"
        )
    return {"status": status, "lambdas": list(lambdas)}


def frontier_points(root: Path, results: dict[str, dict | None], lambdas: list[float], unit: str) -> list[dict]:
    """The frontier's points from MLE through decreasing λ to ADV: ``label, lam, score, score_std, nll,
    nll_sem`` (NLL in ``unit``), read from ``DIR/eval`` (``results``) and ``DIR/frontier``; missing
    ones left out."""
    from .inputs import _read_json

    rows: list[tuple[str, float | None, dict | None]] = [("MLE", None, results.get("mle"))]  # λ → ∞
    rows += [  # from MLE (λ → ∞) down to ADV (λ = 0): the order the figure joins them in
        (f"Hybrid λ = {lam:g}", lam, _read_json(root / "frontier" / f"lam-{lam:g}.json"))
        for lam in sorted(lambdas, reverse=True)
    ]
    rows.append(("ADV", 0.0, results.get("adv")))
    points = []
    for label, lam, r in rows:
        if not r:
            continue
        point = point_of(r, unit)
        if point is not None:
            if r.get("diverged_at") is not None:
                label += f" (diverged at update {r['diverged_at']})"
            run = root / "runs" / Path(r.get("run") or "?").name  # where it is now, wherever it ran
            points.append({"label": label, "lam": lam, **point, "train_minutes": training_minutes(run)})
    return points


def training_minutes(run: Path) -> float | None:
    """Wall time of a run's training (its last evaluation record's ``time``), in minutes."""
    from ..rundir import read_records

    records, _ = read_records(run / "metrics.jsonl")
    times = [r["time"] for _, r in records if r.get("kind") == "eval" and isinstance(r.get("time"), (int, float))]
    return times[-1] / 60 if times else None


def point_of(result: dict, unit: str) -> dict[str, Any] | None:
    """``score, score_std, nll, nll_sem, score_step, nll_step`` of an evaluation JSON (None if incomplete)."""
    bn, bs = result.get("best_nll") or {}, result.get("best_score") or {}
    suffix = "bpd" if unit == "bpd" else "nats"
    score, nll = bs.get("score"), bn.get(f"test_nll_{suffix}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (score, nll)):
        return None
    name = bs.get("score_name")
    return {
        "score": score,
        "score_std": (bs.get("scores") or {}).get(f"{name}_std"),
        "nll": nll,
        "nll_sem": bn.get(f"test_nll_sem_{suffix}"),
        "score_step": bs.get("step"),
        "nll_step": bn.get("step"),
    }


def paper_points(d) -> tuple[list[dict], str]:
    """The paper's Table 1 (MNIST, nats) or Table 2 (CIFAR-10, bits/dim) as points of the trade-off figure."""
    table, tnum = d.paper["table"], "1" if d.paper_name == "mnist" else "2"
    points = [
        {"label": f"paper {LABELS[o]}" + (f" λ = {table[o]['lam']:g}" if "lam" in table[o] else ""), **table[o]}
        for o in OBJECTIVES
    ]
    return points, f"paper, Table {tnum} ({'NICE, full MNIST' if tnum == '1' else 'Real-NVP, full CIFAR-10'})"


def frontier_section(
    points: list[dict], lambdas: list[float], fig: Path | None, root: Path, d, spread: str
) -> list[str]:
    """The λ frontier's figure and table (``spread``: what the ± of the numbers is)."""
    u = "bits/dim" if d.unit == "bpd" else "nats"
    lines = [
        "## The λ frontier: test NLL against sample quality",
        "",
        f"The hybrid objective V(G, D) − λ·E[log p(x)] (Eq. 7) at λ ∈ {{{', '.join(f'{v:g}' for v in lambdas)}}} "
        "beside MLE (λ → ∞) and ADV (λ = 0), every run with the preset's settings and number of updates "
        f"(`flowgan reproduce --frontier`). {spread} Lower-right is better on both.",
        "",
    ]
    if fig:
        lines += [f"![λ frontier]({fig.relative_to(root)})", ""]
    # over seeds the points are means: their checkpoint steps are in each seed's own report
    steps = any(p.get("score_step") is not None or p.get("nll_step") is not None for p in points)
    step_head = " checkpoint step (score / NLL) |" if steps else ""
    lines += [
        f"| run | λ | {d.paper['score_name']} score | test NLL ({u}) |{step_head} training (min) |",
        "|---|---|---|---|" + ("---|" if steps else "") + "---|",
    ]
    for p in points:
        lam = "∞" if p["lam"] is None else f"{p['lam']:g}"
        step_cell = f" {p.get('score_step', '—')} / {p.get('nll_step', '—')} |" if steps else ""
        lines.append(
            f"| {p['label']} | {lam} | {fmt(p['score'], '.2f')} ± {fmt(p.get('score_std'), '.2f')} | "
            f"{fmt(p['nll'], '.1f' if d.unit == 'nats' else '.3f')} ± "
            f"{fmt(p.get('nll_sem'), '.1f' if d.unit == 'nats' else '.3f')} |{step_cell} "
            f"{fmt(p.get('train_minutes'), '.1f')} |"
        )
    missing = [f"{v:g}" for v in lambdas if not any(p["lam"] == v for p in points)]
    if missing:
        lines += ["", f"Not evaluated yet: λ = {', '.join(missing)} (re-run the same command)."]
    pts, label = paper_points(d)
    lines += [
        "",
        f"Marked as stars: the {label}: "
        + "; ".join(f"{p['label'][6:]} {p['score']:.2f} / {p['nll']:.2f}" for p in pts)
        + ".",
    ]
    return lines


def drawn_frontier(
    points: list[dict], lambdas, d, figdir: Path, root: Path, *, group: str, title: str, spread: str
) -> list[str]:
    """``figdir/frontier.png`` (the points joined in order, the paper's marked) and the section around it."""
    from .figures import figure_tradeoff

    paper, paper_label = paper_points(d)
    fig = figure_tradeoff(
        [dict(p, connect=True, group=group) for p in points],
        figdir / "frontier.png",
        title=title,
        score_name=d.score,
        unit=d.unit,
        paper=paper,
        paper_label=paper_label,
    )
    return frontier_section(points, lambdas, fig, root, d, spread)


def frontier_report(d, figdir: Path) -> list[str]:
    """The report's frontier section of a one-seed reproduction (none without ``--frontier``)."""
    lambdas = d.meta.get("frontier") or []
    if not lambdas:
        return []
    lines = drawn_frontier(
        frontier_points(d.root, d.results, lambdas, d.unit),
        lambdas,
        d,
        figdir,
        d.root,
        group="runs of this reproduction",
        title=f"The λ frontier ({d.meta.get('preset', '?')} preset): ± the score's 10-split s.d., the NLL's s.e.",
        spread="± : the score's 10-split standard deviation and the test NLL's standard error over the test images.",
    )
    if d.meta.get("stages", {}).get("frontier", {}).get("status") == "cut":
        lines += ["", "**INCOMPLETE:** the safety net (--budget-minutes) cut a frontier run; re-run to finish it."]
    return [*lines, ""]


def check_lambdas(lambdas) -> list[float]:
    """The λ values a Python caller passed, checked like the flag's."""
    values = sorted({float(v) for v in lambdas})
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise FlowganError(f"the frontier's λ values must be positive and finite, got {list(lambdas)}")
    return values
