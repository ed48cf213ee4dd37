"""Saved runs read back as typed objects: :func:`load_run` returns a :class:`Run`.

A run directory (``config.json``, ``metrics.jsonl``, ``checkpoints/*.pt``; see
:mod:`flowgan.rundir`) or a loose checkpoint file is loaded with the one checkpoint-choosing
rule of :func:`flowgan.checkpoint.choose_checkpoint` (``which="auto"``: the best sample score,
as the paper evaluates its models, §5). The run's configuration comes back as a
:class:`~flowgan.config.TrainConfig`, read leniently (keys that this version does not know are
ignored, missing ones take their defaults), so that old run directories still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import choose_checkpoint, config_from_dict, load_model, read_run_config
from .config import TrainConfig
from .errors import CheckpointError
from .generator import image_dim

__all__ = ["Run", "load_run", "run_base"]


@dataclass
class Run:
    """A trained flow read back from disk.

    ``path``: the run directory (for a loose checkpoint: the directory it lies in, or the run
    above ``checkpoints/``); ``checkpoint``: the file loaded, ``which``: its name (``best_mode``,
    ``latest``, ...; what the rule chose, not what was asked); ``step``: the generator step it
    holds; ``state``: the whole checkpoint dict (optimiser states, bookkeeping).
    """

    model: Any  # a generator (flowgan.generator.Generator), in eval mode, float32
    config: TrainConfig
    step: int | None
    checkpoint: Path
    which: str
    path: Path
    state: dict[str, Any]

    @property
    def dim(self) -> int:
        return image_dim(self.model)


def run_base(run_or_ckpt: str | Path, checkpoint: Path) -> Path:
    """The run directory of a run or checkpoint argument (a loose checkpoint: its folder)."""
    p = Path(run_or_ckpt)
    base = p if p.is_dir() else checkpoint.parent
    return base.parent if base.name == "checkpoints" else base


def load_run(run_or_ckpt: str | Path, which: str = "best_nll", *, device: Any = "cpu", model: Any = None) -> Run:
    """Load the checkpoint of a run that ``which`` selects (:func:`~flowgan.checkpoint.choose_checkpoint`:
    a name, or ``"auto"``), its model on ``device`` and its configuration.

    The configuration is the checkpoint's own (the one the weights were trained with, resumes
    included), else the run's ``config.json``. ``model``: the module of a run whose generator was
    passed from Python (:func:`~flowgan.checkpoint.load_model`). Missing, corrupt or incompatible files raise
    :class:`~flowgan.errors.CheckpointError` with a one-line message.
    """
    path, name = choose_checkpoint(run_or_ckpt, which)
    model, state = load_model(path, device=device, model=model)
    base = run_base(run_or_ckpt, path)
    values = state.get("config")
    if isinstance(values, dict) and values:
        config = config_from_dict(values, path)
    else:
        config = read_run_config(base)
        if config is None:
            raise CheckpointError(
                f"{path} holds no training configuration and {base / 'config.json'} is missing or unreadable"
            )
    return Run(model=model, config=config, step=state.get("step"), checkpoint=path, which=name, path=base, state=state)
