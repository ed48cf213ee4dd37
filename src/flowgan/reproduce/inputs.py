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


def fmt(v, spec: str = ".2f", missing: str = "—") -> str:
    """A number as the reports print it (``missing`` for a missing or non-finite one)."""
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else missing


def _read_json(path: Path) -> dict | None:
    """A JSON object file, or ``None`` when it is missing, unreadable or not an object (then a
    warning names it)."""
    import warnings

    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        warnings.warn(f"{path}: not a readable JSON object; skipped", RuntimeWarning, stacklevel=2)
        return None
    return value


#: the fields of reproduce.json the report reads, and what each must be
META_FIELDS = {
    "preset": str, "description": str, "paper": str, "score": str, "unit": str, "dim": int, "steps": int,
    "budget_minutes": (int, float), "stages": dict, "notes": list, "seed": int, "seeds": int, "frontier": list,
}  # fmt: skip


def read_reproduction_meta(path: Path) -> tuple[dict, int]:
    """The one reader of ``reproduce.json`` for the report: ``(meta, skipped)``, every field of
    the wrong type (a stage that is not an object, a note that is not text, a paper flowgan does not
    know) dropped and counted; a warning names the file and the count."""
    import warnings

    meta = _read_json(path) or {}
    skipped = 0
    for key, kind in META_FIELDS.items():
        value = meta.get(key)
        if value is None:
            continue
        bad = isinstance(value, bool) or not isinstance(value, kind)
        bad = bad or (key == "paper" and value not in PAPER) or (key == "unit" and value not in ("nats", "bpd"))
        if key == "stages" and not bad:
            good = {k: v for k, v in value.items() if isinstance(v, dict)}
            skipped += len(value) - len(good)
            meta[key] = value = good
        if key == "frontier" and not bad and not all(isinstance(v, (int, float)) and v > 0 for v in value):
            bad = True
        if key == "notes" and not bad:
            good = [n for n in value if isinstance(n, str)]
            skipped += len(value) - len(good)
            meta[key] = good
        if bad:
            del meta[key]
            skipped += 1
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed field(s)", RuntimeWarning, stacklevel=2)
    return meta, skipped


def _run_config(run_dir: Path) -> TrainConfig | None:
    """The run's configuration; ``None`` if it has none (or an unreadable one): the report says "—"."""
    from ..checkpoint import read_run_config
    from ..errors import FlowganError

    try:
        return read_run_config(run_dir)
    except FlowganError:
        return None


def _read_metrics(run_dir: Path) -> tuple[list[dict], list[dict], int]:
    """``(eval records, train records, malformed lines skipped)`` of a run's metrics.jsonl."""
    from ..rundir import read_records

    records, skipped = read_records(run_dir / "metrics.jsonl")
    evals = [r for _, r in records if r["kind"] == "eval"]
    trains = [r for _, r in records if r["kind"] == "train"]
    return evals, trains, skipped


class ReproductionData:
    """Everything the report needs, read from a reproduction directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta, meta_skipped = read_reproduction_meta(self.root / "reproduce.json")
        #: what the readers skipped, by file: the report lists it
        self.skipped: dict[str, int] = {"reproduce.json": meta_skipped} if meta_skipped else {}
        preset = PRESETS.get(self.meta.get("preset", ""))
        self.paper_name = self.meta.get("paper") or (preset.paper if preset else "mnist")
        self.paper = PAPER[self.paper_name]
        self.score = self.meta.get("score") or (preset.score if preset else "mode")
        self.unit = self.meta.get("unit") or (preset.unit if preset else "nats")
        self.evals, self.trains = {}, {}
        self.configs: dict[str, TrainConfig | None] = {}  # None: neither its checkpoint nor config.json is readable
        for obj in OBJECTIVES:
            run = self.root / "runs" / obj
            self.evals[obj], self.trains[obj], skipped = _read_metrics(run)
            if skipped:
                self.skipped[f"runs/{obj}/metrics.jsonl"] = skipped
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
