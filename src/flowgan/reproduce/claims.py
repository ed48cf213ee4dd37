"""The paper's claims as checks on numbers: each returns PASS, FAIL or N/A with the numbers behind it.

The thresholds are fixed here, not tuned per run; a FAIL is reported as such.

**Uncertainty.** A comparison is decided only when the difference exceeds its uncertainty;
otherwise the claim is **INCONCLUSIVE**, with the numbers. The uncertainty of a sample score
(IS/MODE) is its 10-split standard deviation (``mode_std``/``is_std``, recorded with every score);
of two scores compared, ``u = sqrt(s_a² + s_b²)``. The uncertainty of a test NLL is its standard
error over the test images (``test_nll_sem_nats``, written by the reproduction's evaluation). A
comparison of two scores that are both at their floor (MODE ≤ 1.5/K ≈ 0.15: every sample in one
class; IS ≤ 1.1) is never decided: it says nothing about the models. Numbers without a recorded
uncertainty (older logs) are compared as they are, and the evidence says so. These checks judge
one training run per objective; over seeds (``flowgan reproduce --seeds N``) a claim is judged on
the seeds' verdicts together (:mod:`.seed_report`).

Verdicts: PASS (holds beyond the uncertainty), FAIL (fails beyond it), INCONCLUSIVE, N/A (inputs
missing).

* **C1** (§3.3, Figure 2) ADV's validation NLL ends far worse than MLE's (≥ 1 bit/dim) and rises
  during training (its final value ≥ 0.25 bit/dim above its minimum, reached in the first half),
  while the critic loss settles (the mean of its last quarter within 25% of its whole range of the
  third quarter's mean).
* **C2** (§4, Tables 1-2) Hybrid's test NLL is within 5% of MLE's (in the unit of the paper's table:
  nats for MNIST, bits/dim for CIFAR-10) while its best sample score beats MLE's.
* **C3** (§3.4, Figures 3 and 6) the Gaussian mixture beats ADV on validation NLL and has a sample
  score ≥ ADV's best for a range of σ (at least two grid values).
* **C4** (§5, Table 3) AIS and KDE are far from the exact NLL (off by ≥ 10% of it for every
  objective) and rank the three objectives differently from it.
* **C5** (§5.1, Figure 4) ADV's singular values spread wider than MLE's and Hybrid's (spread =
  5–95% range of log10 s), and the mean log|det| orders ADV < Hybrid < MLE.
* **C6** (CIFAR-10, Table 2) Hybrid's test NLL and sample score lie between MLE's and ADV's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Claim:
    key: str
    statement: str
    verdict: str  # "PASS", "FAIL", "INCONCLUSIVE", "N/A"
    evidence: str
    numbers: dict[str, Any] = field(default_factory=dict)


YES, NO, UNSURE = 1, -1, 0


def score_floor(score_name: str | None, num_classes: int = 10) -> float | None:
    """The value at or below which a score means "every sample in one class" (see
    :func:`flowgan.metrics.noise.at_floor`)."""
    if score_name == "mode":
        return 1.5 / num_classes
    if score_name in ("is", "mode_paper"):
        return 1.1
    return None


def at_floor(score_name: str | None, value) -> bool:
    f = score_floor(score_name)
    return f is not None and _finite(value) and value <= f


def floor_words(score_name: str | None) -> str:
    if score_name == "mode":
        return "at its floor (MODE ≈ 0.1: every sample classified as one class)"
    return "at its floor (IS ≈ 1: the classifier sees one class in every sample)"


def compare(a: float, b: float, u: float) -> int:
    """``YES`` if ``a > b`` beyond the uncertainty ``u`` of the difference, ``NO`` if ``a < b``
    beyond it, ``UNSURE`` otherwise."""
    d = a - b
    if d > u:
        return YES
    if d < -u:
        return NO
    return UNSURE


def _combine(*parts: int) -> str:
    if any(p == NO for p in parts):
        return "FAIL"
    if all(p == YES for p in parts):
        return "PASS"
    return "INCONCLUSIVE"


def _u(*stds) -> float:
    vals = [float(s) for s in stds if _finite(s)]
    return math.sqrt(sum(v * v for v in vals)) if vals else 0.0


def _pm(std) -> str:
    return f" ± {std:.3f}" if _finite(std) else " (no uncertainty recorded)"


def _na(key: str, statement: str, why: str) -> Claim:
    return Claim(key, statement, "N/A", why)


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def check_c1(evals: dict[str, list[dict]], trains: dict[str, list[dict]], dim: int) -> Claim:
    st = "ADV's validation NLL ends far worse than MLE's and rises during training while the critic loss settles"
    adv, mle = evals.get("adv") or [], evals.get("mle") or []
    if len(adv) < 4 or not mle:
        return _na("C1", st, "needs the evaluation logs of the MLE and ADV runs (at least 4 ADV evaluations)")
    from ..likelihood import nats_to_bpd

    adv_nll = [nats_to_bpd(r["val_nll_nats"], dim) for r in adv]
    mle_final, adv_final = nats_to_bpd(mle[-1]["val_nll_nats"], dim), adv_nll[-1]
    i_min = min(range(len(adv_nll)), key=lambda i: adv_nll[i])
    far = adv_final - mle_final >= 1.0
    rises = adv_final - adv_nll[i_min] >= 0.25 and i_min < len(adv_nll) / 2
    critic = [r["critic_loss"] for r in trains.get("adv") or [] if _finite(r.get("critic_loss"))]
    settles, spread, late_change = False, None, None
    if len(critic) >= 8:
        q = len(critic) // 4
        third, last = critic[2 * q : 3 * q], critic[3 * q :]
        spread = max(critic) - min(critic)
        late_change = abs(sum(last) / len(last) - sum(third) / len(third))
        settles = spread > 0 and late_change <= 0.25 * spread
    ok = far and rises and settles
    ev = (
        f"final validation NLL: ADV {adv_final:.3f} vs MLE {mle_final:.3f} bits/dim (gap {adv_final - mle_final:+.3f}, "
        f"needs >= 1); ADV minimum {adv_nll[i_min]:.3f} at evaluation {i_min + 1}/{len(adv_nll)} (rise "
        f"{adv_final - adv_nll[i_min]:+.3f}, needs >= 0.25 after a minimum in the first half); "
        + (
            f"critic loss range {spread:.3g}, change between the last two quarters {late_change:.3g} "
            "(needs <= 25% of the range)"
            if spread is not None
            else "too few critic-loss records"
        )
    )
    return Claim(
        "C1",
        st,
        "PASS" if ok else "FAIL",
        ev,
        {
            "adv_final_bpd": adv_final,
            "mle_final_bpd": mle_final,
            "adv_min_bpd": adv_nll[i_min],
            "far": far,
            "rises": rises,
            "critic_settles": settles,
        },
    )


def check_c2(results: dict[str, dict], unit: str, score_name: str | None = "mode") -> Claim:
    st = "Hybrid's NLL is within 5% of MLE's while its sample score beats MLE's"
    key = "test_nll_bpd" if unit == "bpd" else "test_nll_nats"
    try:
        h_nll, m_nll = results["hybrid"][key], results["mle"][key]
        h_s, m_s = results["hybrid"]["score"], results["mle"]["score"]
    except (KeyError, TypeError):
        return _na("C2", st, "needs the test NLL and best score of the MLE and Hybrid runs")
    if not _finite(h_nll, m_nll, h_s, m_s):
        return _na("C2", st, "non-finite numbers")
    h_sd, m_sd = results["hybrid"].get("score_std"), results["mle"].get("score_std")
    sem_key = "test_nll_sem_bpd" if unit == "bpd" else "test_nll_sem_nats"
    u_nll = _u(results["hybrid"].get(sem_key), results["mle"].get(sem_key))
    rel = abs(h_nll - m_nll) / abs(m_nll)
    u_rel = u_nll / abs(m_nll)
    nll_part = YES if rel + u_rel <= 0.05 else NO if rel - u_rel > 0.05 else UNSURE
    floors = [n for n, v in (("Hybrid", h_s), ("MLE", m_s)) if at_floor(score_name, v)]
    u_s = _u(h_sd, m_sd)
    score_part = UNSURE if len(floors) == 2 else compare(h_s, m_s, u_s)
    verdict = _combine(nll_part, score_part)
    ev = (
        f"test NLL Hybrid {h_nll:.4g} vs MLE {m_nll:.4g} {unit} ({rel:.1%} apart ± {u_rel:.1%}, needs <= 5%); score "
        f"Hybrid {h_s:.3f}{_pm(h_sd)} vs MLE {m_s:.3f}{_pm(m_sd)} (difference {h_s - m_s:+.3f}, needs > its "
        f"uncertainty {u_s:.3f})"
    )
    if floors:
        ev += f"; {' and '.join(floors)} {'are' if len(floors) == 2 else 'is'} {floor_words(score_name)}"
        if len(floors) == 2:
            ev += ": the scores cannot rank them"
    return Claim(
        "C2",
        st,
        verdict,
        ev,
        {
            "relative_nll_gap": rel,
            "relative_nll_uncertainty": u_rel,
            "hybrid_score": h_s,
            "mle_score": m_s,
            "score_uncertainty": u_s,
            "at_floor": floors,
        },
    )


def check_c3(gmm: dict | None) -> Claim:
    st = "the Gaussian mixture beats ADV on NLL over a range of sigma with a sample score >= ADV's"
    if not gmm or not gmm.get("against"):
        return _na("C3", st, "needs the mixture sweep against the ADV run")
    against = gmm["against"]
    rows = gmm.get("sweep", [])
    score = gmm.get("score_name")
    if against.get("best_score") is None or not any(score in r.get("scores", {}) for r in rows):
        return _na("C3", st, "the sweep or the ADV run has no sample scores")
    run_nll, run_score, run_sd = against.get("nll_nats"), against["best_score"], against.get("best_score_std")
    clear, unsure, floored = [], [], []
    for r in rows:
        g = r.get("scores", {}).get(score)
        if not _finite(g) or not r["val_nll_nats"] < run_nll:
            continue  # the mixture's NLL is not better here (NLL gaps are hundreds of nats; no uncertainty needed)
        if at_floor(score, g) and at_floor(score, run_score):
            floored.append(r["sigma"])
            unsure.append(r["sigma"])
            continue
        c = compare(g, run_score, _u(r.get("scores", {}).get(f"{score}_std"), run_sd))
        (clear if c == YES else unsure if c == UNSURE else []).append(r["sigma"])
    verdict = "PASS" if len(clear) >= 2 else "FAIL" if len(clear) + len(unsure) < 2 else "INCONCLUSIVE"

    def fmt(xs):
        return ", ".join(f"{s:.3g}" for s in xs) or "none"

    ev = (
        f"ADV at its best {score} {run_score:.3f}{_pm(run_sd)}: validation NLL {run_nll:.1f} nats; mixture better on "
        f"NLL and on {score} beyond the uncertainty at sigma {fmt(clear)} ({len(clear)} of {len(rows)} grid values, "
        f"needs >= 2); within the uncertainty at {fmt(unsure)}"
    )
    if floored:
        ev += f"; at sigma {fmt(floored)} both the mixture's and ADV's {score} are {floor_words(score)}"
    elif at_floor(score, run_score):
        ev += f"; ADV's {score} is {floor_words(score)}"
    return Claim(
        "C3",
        st,
        verdict,
        ev,
        {"sigmas": clear, "sigmas_within_uncertainty": unsure, "adv_score": run_score, "adv_val_nll_nats": run_nll},
    )


def check_c4(table3: dict | None) -> Claim:
    st = "AIS and KDE are far from the exact NLL and rank the three objectives differently from it"
    if not table3 or not all(m in table3.get("rankings", {}) for m in ("exact", "ais", "kde")):
        return _na("C4", st, "needs Table 3 with exact, AIS and KDE")
    far = {}
    parts = []
    for m in ("ais", "kde"):
        gaps = []
        for r in table3["runs"]:
            exact, est = r["exact"]["nll_nats"], r[m]["nll_nats"]
            gaps.append(abs(est - exact) / max(abs(exact), 1e-9))
        far[m] = all(g >= 0.10 for g in gaps)
        parts.append(f"{m.upper()} off by {', '.join(f'{g:.0%}' for g in gaps)} (needs >= 10% each)")
    ranks = table3["rankings_text"]
    differ = {m: table3["rankings"][m] != table3["rankings"]["exact"] for m in ("ais", "kde")}
    ok = all(far.values()) and all(differ.values())
    ev = "; ".join(parts) + f"; rankings: exact {ranks['exact']}, AIS {ranks['ais']}, KDE {ranks['kde']}"
    return Claim("C4", st, "PASS" if ok else "FAIL", ev, {"far": far, "rank_differs": differ})


def check_c5(jacobian: dict | None, labels: dict[str, str]) -> Claim:
    st = "ADV's singular values spread wider and the mean log-det orders ADV < Hybrid < MLE"
    if not jacobian:
        return _na("C5", st, "needs the Jacobian spectra")
    by_label = {r["label"]: r for r in jacobian.get("runs", [])}
    try:
        rows = {k: by_label[labels[k]] for k in ("mle", "adv", "hybrid")}
    except KeyError:
        return _na("C5", st, "needs the spectra of all three runs")

    def spread(r):
        q = r.get("log10_singular_value_quantiles") or {}
        return q.get("q95", math.nan) - q.get("q05", math.nan)

    sp = {k: spread(r) for k, r in rows.items()}
    # the flow's exact log-det (finite even where singular values underflow), else the SVD's
    ld = {k: r["mean_logdet_flow"] if _finite(r.get("mean_logdet_flow")) else r["mean_logdet"] for k, r in rows.items()}
    wider = sp["adv"] > sp["mle"] and sp["adv"] > sp["hybrid"]
    order = ld["adv"] < ld["hybrid"] < ld["mle"]
    ok = wider and order
    ev = (
        f"spread of log10 singular values (5-95%): ADV {sp['adv']:.2f}, Hybrid {sp['hybrid']:.2f}, MLE "
        f"{sp['mle']:.2f}; mean log|det|: ADV {ld['adv']:.1f}, Hybrid {ld['hybrid']:.1f}, MLE {ld['mle']:.1f}"
    )
    return Claim("C5", st, "PASS" if ok else "FAIL", ev, {"spread": sp, "mean_logdet": ld})


def _between(v: float, a: float, b: float, u_va: float, u_vb: float) -> int:
    ca, cb = compare(v, a, u_va), compare(v, b, u_vb)
    if ca * cb == -1:
        return YES
    if ca == cb and ca != UNSURE:
        return NO
    return UNSURE


def check_c6(results: dict[str, dict], paper: str) -> Claim:
    st = "(CIFAR-10) Hybrid's NLL and score lie between MLE's and ADV's"
    if paper != "cifar10":
        return _na("C6", st, "a CIFAR-10 claim; this reproduction is on MNIST")
    try:
        n = {k: results[k]["test_nll_bpd"] for k in ("mle", "adv", "hybrid")}
        s = {k: results[k]["score"] for k in ("mle", "adv", "hybrid")}
    except (KeyError, TypeError):
        return _na("C6", st, "needs the test NLL and score of all three runs")
    if not _finite(*n.values(), *s.values()):
        return _na("C6", st, "non-finite numbers")
    nu = {k: results[k].get("test_nll_sem_bpd") for k in n}
    su = {k: results[k].get("score_std") for k in s}
    nll_part = _between(n["hybrid"], n["mle"], n["adv"], _u(nu["hybrid"], nu["mle"]), _u(nu["hybrid"], nu["adv"]))
    score_part = _between(s["hybrid"], s["mle"], s["adv"], _u(su["hybrid"], su["mle"]), _u(su["hybrid"], su["adv"]))
    ev = (
        f"test NLL MLE {n['mle']:.3f} / Hybrid {n['hybrid']:.3f} / ADV {n['adv']:.3f} bits/dim; score MLE "
        f"{s['mle']:.3f}{_pm(su['mle'])} / Hybrid {s['hybrid']:.3f}{_pm(su['hybrid'])} / ADV "
        f"{s['adv']:.3f}{_pm(su['adv'])}"
    )
    return Claim("C6", st, _combine(nll_part, score_part), ev, {"nll_bpd": n, "score": s})
