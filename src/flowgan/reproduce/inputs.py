"""A reproduction directory read back (:class:`ReproductionData`): what the report and its figures are
built from, and only that.

Inputs (any may be missing; the report then says so and the claims that need it are N/A)::

    DIR/reproduce.json                 preset, settings, stage status and timings
    DIR/runs/{mle,adv,hybrid}/         run directories (metrics.jsonl, config.json)
    DIR/eval/{mle,adv,hybrid}.json     test NLL of the best-validated checkpoint, score of the best-score one
    DIR/eval/{mle,adv,hybrid}_samples.png   samples of the best-score checkpoint (Figure 1)
    DIR/gmm/gmm.json, gmm_vs_run.png, samples_sigma_*.png   the mixture baseline (Figures 3/6, 7)
    DIR/table3/table3.json             exact NLL vs AIS vs KDE (Table 3)
    DIR/jacobian/jacobian.json, figure4.png                 singular values (Figure 4/8)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import TrainConfig
from .presets import OBJECTIVES, PAPER, PRESETS


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _run_config(run_dir: Path) -> TrainConfig | None:
    """The run's configuration; ``None`` if it has none (or an unreadable one): the report says "—"."""
    from ..checkpoint import read_run_config
    from ..errors import FlowganError

    try:
        return read_run_config(run_dir)
    except FlowganError:
        return None


def _read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    evals, trains = [], []
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return evals, trains
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        (evals if rec.get("kind") == "eval" else trains if rec.get("kind") == "train" else []).append(rec)
    return evals, trains


class ReproductionData:
    """Everything the report needs, read from a reproduction directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = _read_json(self.root / "reproduce.json") or {}
        preset = PRESETS.get(self.meta.get("preset", ""))
        self.paper_name = self.meta.get("paper") or (preset.paper if preset else "mnist")
        self.paper = PAPER[self.paper_name]
        self.score = self.meta.get("score") or (preset.score if preset else "mode")
        self.unit = self.meta.get("unit") or (preset.unit if preset else "nats")
        self.evals, self.trains = {}, {}
        self.configs: dict[str, TrainConfig | None] = {}  # None: the run has no readable config.json
        for obj in OBJECTIVES:
            run = self.root / "runs" / obj
            self.evals[obj], self.trains[obj] = _read_metrics(run)
            self.configs[obj] = _run_config(run)
        self.results = {obj: _read_json(self.root / "eval" / f"{obj}.json") for obj in OBJECTIVES}
        self.gmm = _read_json(self.root / "gmm" / "gmm.json")
        self.table3 = _read_json(self.root / "table3" / "table3.json")
        self.jacobian = _read_json(self.root / "jacobian" / "jacobian.json")
        dim = self.meta.get("dim")
        if not dim:
            shape = next((r.get("shape") for r in self.results.values() if r and r.get("shape")), None)
            dim = math.prod(shape) if shape else (784 if self.paper_name == "mnist" else 3072)
        self.dim = int(dim)

    def nll_in_unit(self, nats: float | None) -> float | None:
        from ..likelihood import nats_to_bpd

        if not isinstance(nats, (int, float)):
            return None
        return nats if self.unit == "nats" else nats_to_bpd(nats, self.dim)

    def claim_inputs(self) -> dict[str, dict]:
        out = {}
        for obj, r in self.results.items():
            if r:
                bn, bs = r.get("best_nll", {}), r.get("best_score", {})
                out[obj] = {
                    "test_nll_nats": bn.get("test_nll_nats"),
                    "test_nll_bpd": bn.get("test_nll_bpd"),
                    "test_nll_sem_nats": bn.get("test_nll_sem_nats"),
                    "test_nll_sem_bpd": bn.get("test_nll_sem_bpd"),
                    "score": bs.get("score"),
                    "score_std": (bs.get("scores") or {}).get(f"{self.score}_std"),
                }
        return out
