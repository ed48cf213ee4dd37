r"""Every metric of flowgan, declared once: its name, result keys, direction, function, needs.

One :class:`Metric` per metric in :data:`METRICS`; evaluation (:mod:`.evaluate`), the trainer's
score hook (:mod:`.training`), its best checkpoints (:mod:`flowgan.training.evaluation`) and the command
line (``flowgan evaluate --metrics``, ``flowgan score --metrics``, ``flowgan train --scores``) all
read it. A new metric: a function in its own module, one entry here.

========== ============================================================== ========= ==================
name       what (paper)                                                   better    best checkpoint
========== ============================================================== ========= ==================
nll        exact NLL, nats and bits/dim (§2, Tables 1-3)                  lower     ``best_nll`` (val)
collapse   near-duplicate share, saturated pixels, classes covered        --        --
is         Inception score exp(E_x KL(p(y|x) || p(y))) (§3.2, Table 2)    higher    ``best_is``
mode       MODE score IS·exp(-KL(p(y) || p*(y))) (§3.2, Table 1)          higher    ``best_mode``
fid        Fréchet distance of classifier features (Heusel et al. 2017)   lower     ``best_fid``
kid        kernel (MMD²) distance of features (Bińkowski et al. 2018)     lower     ``best_kid``
========== ============================================================== ========= ==================

What a metric's function takes depends on what it ``needs``:

* ``"images"`` (``nll``): ``compute(model, images, **options)`` with uint8 ``images``
  (:func:`flowgan.likelihood.nll_report`);
* ``"samples"`` (``collapse``): ``compute(model, n, seed=, classifier=, device=)``
  (:func:`.collapse.sample_collapse`);
* ``"predictions"`` (``is``, ``mode``) and ``"features"`` (``fid``, ``kid``): ``compute(inputs)``
  with a :class:`ScoreInputs` (a classifier's logits, its features, the real data).

``keys`` are exactly the keys the function returns (``collapse`` without a classifier leaves out
``classes_covered`` and ``collapse_classifier``); ``logged`` those a training evaluation record
carries. Nothing is imported here until a function runs (``flowgan --help`` stays fast).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import FlowganError


@dataclass
class ScoreInputs:
    """What a sample score's function gets: ``logits`` ``(N, K)`` of a classifier on the scored
    images, their ``features`` (``None`` unless a metric needs them), the ``dataset`` (its training
    labels give ``p*(y)``; its ``split`` the real images of FID/KID), ``splits`` (chunks of IS/MODE),
    the classifier ``clf`` (a :class:`~.score_classifier.ScoreClassifier`) and ``device``."""

    logits: Any
    features: Any
    dataset: Any
    clf: Any
    split: str = "test"
    splits: int = 10
    device: Any = None
    _reference: Any = field(default=None, repr=False)

    def reference(self):
        """The classifier's features of the real images of ``split`` (cached on disk, see
        :func:`.features.reference_features`), computed once per evaluation."""
        if self._reference is None:
            from .features import reference_features

            self._reference = reference_features(self.dataset, self.split, self.clf, device=self.device)
        return self._reference

    def reference_text(self) -> str:
        """What FID/KID compare with, as every score JSON records it (key ``reference``)."""
        from .features import PREPROCESSING

        return f"{self.dataset.name} {self.split} split: {len(self.reference())} real images, {PREPROCESSING}"


@dataclass(frozen=True)
class Metric:
    """One metric (see the module docstring)."""

    name: str  #: what ``--metrics`` / ``--scores`` / ``TrainConfig.score_metrics`` say
    keys: tuple[str, ...]  #: the keys its function returns
    higher_is_better: bool | None  #: None: a diagnostic with no direction (no best checkpoint)
    compute: Callable[..., dict]  #: its function (arguments by ``needs``)
    needs: str  #: "images", "samples", "predictions" or "features"
    logged: tuple[str, ...] = ()  #: the keys a training evaluation record carries
    record_key: str | None = None  #: the key of a training record that selects its best checkpoint
    paper: str = ""  #: what it reproduces

    @property
    def is_score(self) -> bool:
        """A score of samples through a classifier (``is``, ``mode``, ``fid``, ``kid``)."""
        return self.needs in ("predictions", "features")

    @property
    def checkpoint(self) -> str | None:
        """The name of its best checkpoint in a run (``best_<name>``), None for a diagnostic."""
        return None if self.higher_is_better is None else f"best_{self.name}"

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` in this metric's direction. A finite value beats a
        missing or non-finite best; a non-finite value never beats anything."""
        if self.higher_is_better is None:
            raise FlowganError(f"{self.name} has no direction: it selects no checkpoint")
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value > best if self.higher_is_better else value < best

    def nan_result(self) -> dict[str, float]:
        """Its logged keys, NaN: the result for images with NaN/Inf (scores are not computed)."""
        return {k: float("nan") for k in self.logged}


# ------------------------------------------------------------------------------ the functions


def _nll(model, images, **options) -> dict:
    from ..likelihood import nll_report

    return nll_report(model, images, **options)


def _collapse(model, n: int, *, seed: int = 0, classifier=None, device=None) -> dict:
    from .collapse import sample_collapse

    return sample_collapse(model, n, seed=seed, classifier=classifier, device=device)


def _inception(inputs: ScoreInputs) -> dict:
    from .inception_score import inception_score

    r = inception_score(inputs.logits, inputs.splits)
    return {"is": r["is"], "is_std": r["is_std"]}


def _mode(inputs: ScoreInputs) -> dict:
    from .mode_score import dataset_label_marginal, mode_score

    return mode_score(inputs.logits, dataset_label_marginal(inputs.dataset, inputs.logits.shape[1]), inputs.splits)


def _fid(inputs: ScoreInputs) -> dict:
    from .fid import fid_from_features

    return fid_from_features(inputs.reference(), inputs.features)


def _kid(inputs: ScoreInputs) -> dict:
    from .fid import kid_from_features

    return kid_from_features(inputs.reference(), inputs.features)


#: every metric, in the order results list them
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "nll", ("nll_nats", "nll_bpd"), False, _nll, "images",
            ("nll_nats", "nll_bpd"), "val_nll_nats", "exact NLL (§2; Tables 1-3)",
        ),
        Metric(
            "collapse",
            ("near_duplicate_share", "saturated_share", "classes_covered", "collapse_samples", "collapse_classifier"),
            None, _collapse, "samples",
            ("near_duplicate_share", "saturated_share", "classes_covered", "collapse_samples", "collapse_classifier"),
            paper="what Figure 1's sample grids show",
        ),
        Metric(
            "is", ("is", "is_std"), True, _inception, "predictions",
            ("is", "is_std"), "is", "Inception score (§3.2; Table 2)",
        ),
        Metric(
            "mode", ("mode_paper", "mode_paper_std", "mode", "mode_std", "kl_marginal"), True, _mode, "predictions",
            ("mode", "mode_std", "mode_paper"), "mode", "MODE score (§3.2; Table 1)",
        ),
        Metric("fid", ("fid",), False, _fid, "features", ("fid",), "fid", "FID (Heusel et al. 2017)"),
        Metric(
            "kid", ("kid", "kid_std", "kid_subset_size"), False, _kid, "features",
            ("kid", "kid_std"), "kid", "KID (Bińkowski et al. 2018)",
        ),
    )
}  # fmt: skip

#: the sample scores (``flowgan score``, ``--scores``, ``TrainConfig.score_metrics``)
SCORES: tuple[str, ...] = tuple(name for name, m in METRICS.items() if m.is_score)


def metric(name: str) -> Metric:
    """The metric called ``name`` (a :class:`FlowganError` naming the choices otherwise)."""
    if name not in METRICS:
        raise FlowganError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]


def parse_metrics(text: str | Iterable[str], allowed: Iterable[str] | None = None, what: str = "metric") -> list[str]:
    """The names of a comma-separated list (or an iterable of names), checked against ``allowed``
    (default: every metric), in the order given; a :class:`FlowganError` names unknown ones and
    the choices, or says that none was given."""
    allowed = tuple(METRICS if allowed is None else allowed)
    names = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s) for s in text]
    names = [s for s in names if s]
    unknown = [s for s in names if s not in allowed]
    if unknown or not names:
        raise FlowganError(
            f"unknown {what}(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}"
        )
    return names


def best_checkpoint_metrics(score_metrics: Iterable[str]) -> list[Metric]:
    """The metrics whose best values a training run keeps as checkpoints: the validation NLL
    (``best_nll``), then each of ``score_metrics`` that has a direction (``best_mode``, ...)."""
    chosen = [METRICS["nll"]] + [METRICS[s] for s in score_metrics if s in METRICS and s != "nll"]
    return [m for m in chosen if m.checkpoint is not None]


def update_best(best: dict[str, dict], record: dict[str, Any], metrics: Iterable[Metric], step: int) -> list[str]:
    """Fold an evaluation ``record`` into ``best`` (record key -> ``{"value", "step",
    "checkpoint"}``, as checkpoints store it) in each metric's direction; returns the names of the
    checkpoints it improves, in the order of ``metrics``."""
    improved = []
    for m in metrics:
        if m.record_key not in record:
            continue
        value = float(record[m.record_key])
        held = best.get(m.record_key)
        if m.improves(value, None if held is None else held["value"]):
            best[m.record_key] = {"value": value, "step": step, "checkpoint": m.checkpoint}
            improved.append(m.checkpoint)
    return improved
