"""``flowgan reproduce --seeds N``: the reproduction repeated over training seeds, judged together.

One training run per objective cannot tell a claim from a lucky seed. With ``--seeds N`` (N ≥ 2)
the reproduction directory holds N complete one-seed reproductions, ``DIR/seed-K`` trained with
seed K (K = 0 … N−1; seed 0 is what a one-seed reproduction trains), each with its own report,
and ``DIR/report.md`` puts them together:

* every table number as the mean ± the standard deviation across seeds (``correction=1``), each
  seed's value in ``DIR/seeds.json``;
* each claim judged on the seeds together: **PASS** when it passes in every seed, **FAIL** when it
  fails in every seed (each seed's verdict already decided beyond that run's own measurement
  uncertainty, :mod:`.claims`), **INCONCLUSIVE** when the seeds disagree (the seed-to-seed spread is
  larger than the effect) or any seed is inconclusive, **N/A** when no seed has the inputs; the
  per-seed verdicts are listed;
* the figures of one seed (seed 0, said in their captions), a figure of every seed's point in the
  NLL–score plane, and with ``--frontier`` the λ frontier averaged over seeds.

Resume: re-running the same command reuses every finished stage of every seed and continues the
interrupted one; raising N adds seeds, keeping the finished ones.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import FlowganError
from .presets import PRESETS, Preset
from .seed_report import build_seed_report, seed_dir


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class SeedReproduction:
    """N one-seed :class:`~.pipeline.Reproduction` s in ``DIR/seed-K`` and the report over them."""

    def __init__(self, preset: str | Preset, out: str | Path, *, seeds: int, **options: Any):
        from .pipeline import Reproduction, load_state

        if seeds < 2:
            raise FlowganError("--seeds must be >= 2 for a multi-seed reproduction")
        self.preset = preset if isinstance(preset, Preset) else PRESETS.get(preset)
        if self.preset is None:
            raise FlowganError(f"unknown reproduce preset {preset!r}; choose from {', '.join(PRESETS)}")
        self.root, self.seeds, self.options = Path(out), seeds, options
        path = self.root / "reproduce.json"
        state = load_state(path)
        if state is not None and not state.get("seeds"):
            raise FlowganError(f"{self.root} holds a one-seed reproduction; choose another --out for --seeds {seeds}")
        if state is not None and state.get("preset") != self.preset.name:
            raise FlowganError(
                f"{self.root} holds a reproduction of preset {state.get('preset')!r}, not {self.preset.name!r}; "
                "choose another --out"
            )
        # check every seed's directory before any work (a mismatch of steps, modules, seed raises here)
        self.members = [Reproduction(self.preset, seed_dir(self.root, k), seed=k, **options) for k in range(seeds)]
        first = self.members[0].state
        self.state = state or {"stages": {}}
        self.state.update(
            {k: first.get(k) for k in ("preset", "description", "paper", "score", "unit", "steps", "modules")},
            seeds=seeds,
            budget_minutes=first["budget_minutes"],
        )
        if first.get("frontier"):
            self.state["frontier"] = first["frontier"]

    def run(self, skip: tuple[str, ...] = ()) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / "reproduce.json", self.state, sort_keys=True)
        for k, member in enumerate(self.members):
            _say(f"=== seed {k} ({k + 1} of {self.seeds}): {member.root} ===")
            start = time.perf_counter()
            member.run(skip=skip)
            entry = self.state["stages"].setdefault(f"seed-{k}", {})
            entry.update(status="done", seconds=round(entry.get("seconds", 0.0) + time.perf_counter() - start, 1))
            write_json(self.root / "reproduce.json", self.state, sort_keys=True)
        path = build_seed_report(self.root)
        claims = json.loads((self.root / "claims.json").read_text())
        _say("  claims over the seeds: " + ", ".join(f"{c['key']} {c['verdict']}" for c in claims))
        _say(f"  report: {path}")
        return path
