"""``flowgan reproduce``: train MLE, ADV and Hybrid Flow-GANs, evaluate, analyse, report.

Stages, each recorded in ``DIR/reproduce.json`` when done::

    calibrate                            a few timed updates and one evaluation of each objective in a
                                         scratch directory: the expected duration (printed, recorded)
    train-adv, train-hybrid, train-mle   run directories DIR/runs/<objective>: each trains for the
                                         preset's number of generator updates (``--steps``); the
                                         budget (``--budget-minutes``) is only a safety net, and a
                                         stage it cuts is recorded as "cut" (report: INCOMPLETE)
    evaluate                             DIR/eval/<objective>.json and sample grids
    gmm                                  DIR/gmm/ (analysis.baseline.gmm_baseline against the ADV run)
    table3                               DIR/table3/ (analysis.table3.likelihood_table)
    jacobian                             DIR/jacobian/ (analysis.figure4.jacobian_analysis)
    frontier                             only with ``frontier=`` (--frontier): the hybrid at more values
                                         of λ, DIR/runs/hybrid-lam<λ> and DIR/frontier/ (:mod:`.frontier`)
    report                               DIR/report.md, DIR/figures/, DIR/claims.json

Re-running the same command reuses finished stages; an interrupted training run (or one cut by the
safety net, re-run with a larger ``--budget-minutes``) continues from its latest checkpoint
(exactly), and the analyses after it are redone.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json
from ..errors import FlowganError, NonFiniteError
from .frontier import check_lambdas
from .presets import LABELS, OBJECTIVES, PRESETS, Preset

STAGES = ("train-adv", "train-hybrid", "train-mle", "evaluate", "gmm", "table3", "jacobian", "frontier", "report")
ANALYSIS_STAGES = ("evaluate", "gmm", "table3", "jacobian", "frontier", "report")
#: the analyses a run may leave out (flowgan reproduce --skip)
SKIPPABLE = ("gmm", "table3", "jacobian")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_state(path: Path) -> dict | None:
    """A reproduction's ``reproduce.json`` (None if there is none); a corrupt one is a one-line error."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise FlowganError(f"{path} is corrupt; move it away to start the reproduction afresh")
    return value


class Reproduction:
    def __init__(
        self,
        preset: str | Preset,
        out: str | Path,
        *,
        budget_minutes: float | None = None,
        data_dir: str | None = None,
        device: str = "auto",
        progress: bool = True,
        steps: int | None = None,
        modules: dict[str, Any] | None = None,
        seed: int | None = None,
        frontier: tuple[float, ...] | None = None,
    ):
        """``seed``: the training seed of every objective (None: the preset's, 0); ``frontier``: the
        values of λ at which to train the hybrid for the λ frontier (None: the frontier stage is
        left out, or the values a previous run of this directory asked for)."""
        if isinstance(preset, Preset):  # a custom plan (tests, experiments)
            self.preset = preset
            preset = preset.name
        elif preset in PRESETS:
            self.preset = PRESETS[preset]
        else:
            raise FlowganError(f"unknown reproduce preset {preset!r}; choose from {', '.join(PRESETS)}")
        self.root = Path(out)
        self.state_path = self.root / "reproduce.json"
        self.device, self.progress = device, progress
        state = load_state(self.state_path)
        if state and state.get("seeds"):
            raise FlowganError(
                f"{self.root} holds a reproduction over {state['seeds']} seeds; add --seeds {state['seeds']} "
                "(or choose another --out)"
            )
        if state and state.get("preset") != preset:
            raise FlowganError(
                f"{self.root} holds a reproduction of preset {state.get('preset')!r}, not {preset!r}; "
                "choose another --out"
            )
        if budget_minutes is not None and budget_minutes <= 0:
            raise FlowganError("--budget-minutes must be positive")
        if steps is not None and steps < 1:
            raise FlowganError("--steps must be >= 1")
        if state and steps is not None and state.get("steps") not in (None, steps):
            raise FlowganError(
                f"{self.root} holds a reproduction with {state['steps']} generator updates per objective, not {steps}; "
                "choose another --out"
            )
        modules = {k: v for k, v in (modules or {}).items() if v not in (None, {})}
        if state and modules and state.get("modules", {}) != modules:
            raise FlowganError(
                f"{self.root} holds a reproduction with {state.get('modules') or 'the preset modules'}, not {modules}; "
                "choose another --out"
            )
        if state and state.get("seed") != seed:
            raise FlowganError(
                f"{self.root} holds a reproduction trained with seed {state.get('seed')}, not "
                f"{'the preset default' if seed is None else seed}; choose another --out"
            )
        self.state = state or {"preset": preset, "stages": {}, "modules": modules, "seed": seed}
        if frontier is not None and check_lambdas(frontier) != self.state.get("frontier"):
            self.state["frontier"] = check_lambdas(frontier)  # finished runs are reused, the points recomputed
            for stage in ("frontier", "report"):
                self.state["stages"].pop(stage, None)
        self.state.update(
            preset=preset,
            description=self.preset.description,
            paper=self.preset.paper,
            score=self.preset.score,
            unit=self.preset.unit,
            budget_minutes=budget_minutes or self.state.get("budget_minutes") or self.preset.budget_minutes,
            data_dir=data_dir if data_dir is not None else self.state.get("data_dir"),
            device=device,
            steps=int(steps or self.state.get("steps") or self.preset.steps),
        )
        self.budget = float(self.state["budget_minutes"]) * 60.0
        self.steps = int(self.state["steps"])
        self._dataset = None

    # ------------------------------------------------------------------ state

    def _save_state(self) -> None:
        write_json(self.state_path, self.state, sort_keys=True)

    def done(self, stage: str) -> bool:
        """Finished: done, or a training run that diverged (re-running it would diverge again)."""
        return self.state["stages"].get(stage, {}).get("status") in ("done", "diverged")

    def _mark(self, stage: str, status: str, seconds: float, **extra) -> None:
        entry = self.state["stages"].setdefault(stage, {})
        entry.update(status=status, seconds=round(entry.get("seconds", 0.0) + seconds, 1), **extra)
        self._save_state()

    # ------------------------------------------------------------------ budget

    def _stage_budget(self, stage: str) -> float:
        """Seconds expected for a stage: the calibration's estimate for training stages once it
        has run, else the preset's shares of the budget; the analyses split the rest evenly."""
        cal = self.state.get("calibration") or {}
        if stage.startswith("train-") and stage[6:] in cal.get("expected_seconds", {}):
            return float(cal["expected_seconds"][stage[6:]])
        shares = self.preset.training_share
        if stage.startswith("train-"):
            return shares[stage[6:]] * self.budget
        rest = max(0.0, 1.0 - sum(shares.values())) * self.budget
        return rest / len(ANALYSIS_STAGES)

    def _eta(self, stage: str) -> str:
        remaining = sum(self._stage_budget(s) for s in STAGES[STAGES.index(stage) :] if not self.done(s))
        return time.strftime("%H:%M", time.localtime(time.time() + remaining))

    def _time_left(self, stage: str) -> float:
        """The safety net of a training stage: the budget minus what the other stages used."""
        used = sum(v.get("seconds", 0.0) for k, v in self.state["stages"].items() if k != stage)
        return max(1.0, self.budget - used)

    # ------------------------------------------------------------------ stages

    def run(self, skip: tuple[str, ...] = ()) -> Path:
        """Run every stage not done before, except the analyses named in ``skip`` (of
        :data:`SKIPPABLE`: their report sections and claims then say N/A); returns the report."""
        unknown = set(skip) - set(SKIPPABLE)
        if unknown:
            raise FlowganError(f"cannot skip {', '.join(sorted(unknown))}; only {', '.join(SKIPPABLE)} can be skipped")
        self.root.mkdir(parents=True, exist_ok=True)
        self._save_state()
        stages: dict[str, Callable[[], dict | None]] = {
            "train-adv": lambda: self.train("adv"),
            "train-hybrid": lambda: self.train("hybrid"),
            "train-mle": lambda: self.train("mle"),
            "evaluate": self.evaluate,
            "gmm": self.gmm,
            "table3": self.table3,
            "jacobian": self.jacobian,
            "frontier": self.frontier,
            "report": self.report,
        }
        if any(not self.done(f"train-{o}") for o in OBJECTIVES):
            for stage in ANALYSIS_STAGES:  # they read the training runs: redo them after any training
                self.state["stages"].pop(stage, None)
            if "calibration" not in self.state:
                self.state["calibration"] = self.calibrate()
                self._save_state()
            cal = self.state["calibration"]
            left = sum(cal["expected_seconds"][o] for o in OBJECTIVES if not self.done(f"train-{o}"))
            per_update = ", ".join("{} {:.3f} s/update".format(LABELS[o], cal["step_seconds"][o]) for o in OBJECTIVES)
            per_eval = ", ".join("{} {:.1f} s".format(LABELS[o], cal["eval_seconds"][o]) for o in OBJECTIVES)
            _say(
                f"calibration: {per_update}, evaluation {per_eval}: training {self.steps} updates per objective is "
                f"expected to take {left / 60:.1f} min on this machine now (safety net: {self.budget / 60:.0f} min for "
                "the whole reproduction)"
            )
        for i, stage in enumerate(STAGES, 1):
            if stage in skip or (stage == "frontier" and not self.state.get("frontier")):
                _say(f"[{i}/{len(STAGES)}] {stage}: skipped" + ("" if stage in skip else " (no --frontier)"))
                continue
            if self.done(stage) and stage != "report":
                _say(f"[{i}/{len(STAGES)}] {stage}: done before, reused")
                continue
            _say(
                f"[{i}/{len(STAGES)}] {stage} (planned {self._stage_budget(stage) / 60:.1f} min; whole reproduction "
                f"ETA {self._eta(stage)})"
            )
            start = time.perf_counter()
            extra = dict(stages[stage]() or {})
            self._mark(stage, extra.pop("status", "done"), time.perf_counter() - start, **extra)
        return self.root / "report.md"

    def _dataset_obj(self):
        if self._dataset is None:
            from ..data import load_dataset

            self._dataset = load_dataset(self.preset.dataset, self.state.get("data_dir"))
        return self._dataset

    def run_config(self, objective: str):
        from ..config import resolve_config

        options = dict(self.preset.run_options[objective])
        options.update(
            score_metrics=(self.preset.score,),
            max_steps=self.steps,
            time_limit=self._time_left(f"train-{objective}"),
            data_dir=self.state.get("data_dir"),
            device=self.device,
        )
        options.update(self.state.get("modules") or {})  # --model, --critic and their options
        if self.state.get("seed") is not None:
            options["seed"] = self.state["seed"]
        return resolve_config(self.preset.runs[objective], **options)

    def calibrate(self, steps: int = 3) -> dict:
        """Time ``steps`` generator updates (after one warm-up update) and one evaluation of each
        objective, in a scratch directory, and extrapolate to the preset's updates and
        evaluations. Touches neither the reproduction's runs nor the global random state."""
        import tempfile

        import torch

        from ..training import train

        step_s, eval_s, expected = {}, {}, {}
        with tempfile.TemporaryDirectory(prefix="flowgan-calibrate-") as tmp, torch.random.fork_rng(devices=[]):
            for obj in OBJECTIVES:
                stamps: list[float] = []
                config = self.run_config(obj).replace(max_steps=steps + 1, eval_every=10**9, time_limit=None)
                start = time.perf_counter()
                try:
                    train(  # evaluates at step 0 and at the end
                        config,
                        Path(tmp) / obj,
                        data=self._dataset_obj(),
                        progress=False,
                        callbacks=(lambda state, modules, stamps=stamps: stamps.append(time.perf_counter()),),
                    )
                except NonFiniteError:
                    pass  # diverged already: the updates timed so far stand, its own stage will say so
                total = time.perf_counter() - start
                per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else total
                per_eval = max(0.0, (total - per_step * len(stamps)) / 2)
                cfg = self.run_config(obj)
                n_evals = self.steps // max(cfg.eval_every, 1) + 1
                step_s[obj], eval_s[obj] = per_step, per_eval
                expected[obj] = per_step * self.steps + per_eval * n_evals
        return {"step_seconds": step_s, "eval_seconds": eval_s, "expected_seconds": expected, "timed_updates": steps}

    def train(self, objective: str) -> dict:
        return self.train_run(self.root / "runs" / objective, self.run_config(objective), LABELS[objective])

    def train_run(self, run_dir: Path, config, label: str) -> dict:
        """Train (or continue) one run directory for ``config.max_steps`` updates; the stage record."""
        from ..checkpoint import checkpoint_path
        from ..training import train

        resume = checkpoint_path(run_dir).is_file()
        if run_dir.exists() and not resume:
            shutil.rmtree(run_dir)  # started but never checkpointed: start again
        try:
            summary = train(config, run_dir, resume=resume, data=self._dataset_obj(), progress=self.progress)
        except NonFiniteError as e:  # a result, not a crash: the report says so; evaluated at its last good state
            _say(f"  {label}: DIVERGED ({e}); evaluated at its last good checkpoints")
            reason = str(e).split(";")[0]
            return {"steps": e.step, "planned_steps": self.steps, "stopped_by": reason, "status": "diverged"}
        cut = summary["stopped_by"] == "time_limit" and summary["step"] < self.steps
        _say(
            f"  {label}: {summary['step']} of {self.steps} updates in {summary['time'] / 60:.1f} min"
            + (
                f" -- CUT by the safety net (--budget-minutes {self.budget / 60:g}): the report will say INCOMPLETE"
                if cut
                else ""
            )
        )
        return {
            "steps": summary["step"],
            "planned_steps": self.steps,
            "stopped_by": summary["stopped_by"],
            "status": "cut" if cut else "done",
        }

    def evaluate(self) -> dict:
        from ..runtime import resolve_device
        from .evaluation import evaluate_run

        ds = self._dataset_obj()
        out = self.root / "eval"
        out.mkdir(parents=True, exist_ok=True)
        score = self.preset.score
        for obj in OBJECTIVES:
            result = evaluate_run(
                self.root / "runs" / obj,
                ds,
                score,
                n_samples=self.preset.score_samples,
                device=resolve_device(self.device),
                progress=self.progress,
                grid=out / f"{obj}_samples.png",
            )
            write_json(out / f"{obj}.json", {"objective": obj, "label": LABELS[obj], **result})
            best_nll, best_score = result["best_nll"], result["best_score"]
            _say(
                f"  {LABELS[obj]} (best-validated checkpoint, step {best_nll['step']}): validation NLL "
                f"{best_nll['val_nll_nats']:.1f} nats ({best_nll['val_nll_bpd']:.3f} bits/dim), test NLL "
                f"{best_nll['test_nll_nats']:.1f} nats ({best_nll['test_nll_bpd']:.3f} bits/dim); {score} "
                f"{best_score['score']:.3f} ({best_score['checkpoint']}, step {best_score['step']})"
            )
        self.state["dim"] = math.prod(ds.shape)
        return {}

    def _runs(self) -> list[Path]:
        return [self.root / "runs" / o for o in OBJECTIVES]

    def gmm(self) -> dict:
        """The mixture baseline against the ADV run (Figures 3/6, 7): DIR/gmm/."""
        from ..analysis.baseline import GmmSettings, gmm_baseline
        from ..analysis.common import settings_from

        settings = settings_from(GmmSettings, {"score": self.preset.score, **self.preset.gmm}, "gmm")
        result = gmm_baseline(
            None,
            settings,
            against=self.root / "runs" / "adv",
            progress=self.progress,
            log=lambda line: _say(f"  {line}"),
        )
        result.write(self.root / "gmm")
        return {}

    def table3(self) -> dict:
        """Exact NLL against AIS and KDE (Table 3): DIR/table3/."""
        from ..analysis.common import settings_from
        from ..analysis.table3 import LikelihoodSettings, likelihood_table

        settings = settings_from(LikelihoodSettings, self.preset.likelihoods, "likelihoods")
        table = likelihood_table(
            self._runs(),
            settings,
            labels=[LABELS[o] for o in OBJECTIVES],
            device=self.device,
            progress=self.progress,
            log=lambda line: _say(f"  {line}"),
        )
        table.write(self.root / "table3")
        return {}

    def jacobian(self) -> dict:
        """The singular values of dG/dz (Figure 4): DIR/jacobian/."""
        from ..analysis.common import settings_from
        from ..analysis.figure4 import JacobianSettings, jacobian_analysis

        settings = settings_from(JacobianSettings, self.preset.jacobian, "jacobian")
        result = jacobian_analysis(
            self._runs(),
            settings,
            labels=[LABELS[o] for o in OBJECTIVES],
            device=self.device,
            progress=self.progress,
            log=lambda line: _say(f"  {line}"),
        )
        result.write(self.root / "jacobian")
        return {}

    def frontier(self) -> dict:
        """The hybrid at each λ of ``--frontier`` beside MLE and ADV: DIR/frontier/ (:mod:`.frontier`)."""
        from .frontier import frontier_stage

        return frontier_stage(self, self.state["frontier"], say=_say)

    def report(self) -> dict:
        from .report import build_report

        self._save_state()
        path = build_report(self.root)
        claims = json.loads((self.root / "claims.json").read_text())
        verdicts = {c["key"]: c["verdict"] for c in claims}
        _say("  claims: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
        _say(f"  report: {path}")
        return {"claims": verdicts}
