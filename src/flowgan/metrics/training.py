"""Sample scores during training: :func:`score_hook`, the training loop's ``score_fn``.

At each evaluation (:func:`flowgan.training.evaluation.evaluate`) with ``config.score_metrics``
non-empty, e.g. ``("mode",)`` for MNIST or ``("is",)`` for CIFAR-10 as in the paper's Tables 1-2
and Appendix B, the hook draws ``config.score_samples`` samples and returns the scores; the loop
logs them in
``metrics.jsonl`` and keeps ``best_<metric>.pt`` checkpoints (in each metric's direction, declared
in :mod:`.registry`: higher is better for IS and MODE, lower for FID and KID).

* Samples come from their own CPU generators seeded from ``(config.seed, step)``: the run's
  training generator (its state's ``rng``) and the global random state (forked around the hook) are
  not touched, so a run with scores ends with exactly the parameters of the same run without
  them, and resumes bit-exactly.
* FID/KID compare with the **validation** split (model selection must not look at test data).
* The classifier is the dataset's shipped default (never a cached one unless named by
  ``config.score_classifier``, ``--score-classifier``: the same run scores the same way on every
  machine); if there is none, a :class:`FlowganError` says how to train and name one.
  It is loaded once per process. Each record names it (``classifier``: ``name@hash``) and
  carries the 10-split standard deviation of each score (``mode_std``, ``is_std``, ...), the
  uncertainty the reproduction's verdicts use.
* The model is sampled in eval mode and put back in its previous mode.
"""

from __future__ import annotations

import time

from ..errors import FlowganError

_CLASSIFIERS: dict = {}


def cached_classifier(dataset, name: str | None = None):
    """:func:`~.classifiers.find_classifier` of ``dataset`` and ``name``, loaded once per process
    (the latest one is kept: a process trains one run at a time)."""
    from .classifiers import classifier_family, find_classifier

    key = (classifier_family(dataset), name)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = find_classifier(dataset, name)
    return _CLASSIFIERS[key]


def score_hook(model, dataset, cfg, step: int, device) -> dict:
    """The scores in ``cfg.score_metrics`` of ``cfg.score_samples`` samples of ``model`` (trained
    on ``dataset``) at ``step``, on ``device``: each metric's ``logged`` keys (:mod:`.registry`: ``mode``,
    ``mode_std`` and ``mode_paper``, ``is`` and ``is_std``, ``fid``, ``kid`` and ``kid_std``), the
    classifier (``name@hash``) and ``score_seconds``."""
    import torch

    from ..runtime import mix_seed
    from .evaluate import check_scores, evaluate_samples
    from .registry import METRICS

    scores = check_scores(cfg.score_metrics)
    if cfg.score_samples < 2:
        raise FlowganError("score_samples must be at least 2")
    start = time.perf_counter()
    device = torch.device(device)
    # samples use their own generators; the fork guards the global state against anything else
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        result = evaluate_samples(
            model,
            dataset,
            scores,
            n_samples=cfg.score_samples,
            classifier=cached_classifier(dataset, cfg.score_classifier),
            device=device,
            split="val",
            seed=mix_seed(cfg.seed, step, 5),
        )
    out = {k: result[k] for s in scores for k in METRICS[s].logged if k in result}
    out["classifier"] = result.get("classifier_name", "?") + (
        f"@{result['classifier_sha256']}" if result.get("classifier_sha256") else ""
    )
    out["score_seconds"] = round(time.perf_counter() - start, 3)
    return out
