"""Checkpoints: written atomically, read with clear errors, models rebuilt from their spec.

A checkpoint is a dict saved with ``torch.save`` holding only tensors and plain Python values, so it
loads with ``torch.load(..., weights_only=True)`` (no arbitrary code runs on load):
``format``, ``version``, ``config`` (the run's :class:`~flowgan.config.TrainConfig` as a dict),
``model_spec`` and ``model`` (state dict), ``critic_spec``/``critic`` (or ``None``), optimizer
states, the random generator state, the data stream position, ``step`` and bookkeeping.

Which checkpoint of a run a name selects is decided in one place, :func:`choose_checkpoint`
(``"auto"``: the best sample score, as the paper evaluates its models); a saved configuration
is read back as a :class:`~flowgan.config.TrainConfig` by :func:`config_from_dict` and
:func:`read_run_config`, leniently, so that runs of older versions load.
:func:`flowgan.runs.load_run` puts the pieces together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .atomic import replacing, write_json
from .config import TrainConfig
from .errors import CheckpointError, FlowganError

FORMAT = "flowgan-checkpoint"
VERSION = 1


def checkpoint_path(run_dir: str | Path, name: str = "latest") -> Path:
    """Where checkpoint ``name`` (``latest``, ``best_nll``, ``best_<score>``) of a run lives: the
    one place that builds such a path. A name is a name: one that would leave
    ``run_dir/checkpoints`` (a path, ``..``, a hidden file) is a :class:`CheckpointError`, so a
    command never reads another run's checkpoint as this run's."""
    name = str(name)
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise CheckpointError(
            f"checkpoint {name!r} is not a checkpoint name (latest, best_nll, best_<score>); to use another "
            "file, give its path as the run argument"
        )
    return Path(run_dir) / "checkpoints" / f"{name}.pt"


class _Writes:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write: torch reports a full
    disk as "unexpected pos ..." (RuntimeError); :func:`atomic_save` raises the real cause."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self.f.flush()


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``: a
    killed process leaves either the old or the new file, never a truncated one (and a temporary
    file that the next resume of the run removes). A failed write (disk full, read-only) raises
    ``OSError`` naming ``path``, and the old file stays."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        out = _Writes(f)
        try:
            torch.save(obj, out)
            f.flush()
        except (OSError, RuntimeError) as e:
            cause = out.error or (e if isinstance(e, OSError) else None)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from None


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` hold the contents of ``src`` atomically: a hard link where the file system
    allows it (instant; later atomic saves to ``src`` replace its inode, not ``dst``'s), else a copy."""
    import shutil

    with replacing(dst) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def load_versioned(
    path: str | Path,
    fmt: str,
    version: int,
    *,
    unreadable: str,
    wrong_format: str,
    error: type[Exception] = CheckpointError,
    mmap: bool = False,
) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` of a dict tagged ``{"format": fmt, "version": v}``
    with ``v <= version``, else ``error``: ``unreadable``/``wrong_format`` are the messages (an
    exception's type is appended to the first). ``mmap``: tensors are mapped, not read (for a
    caller that wants the small values of the dict, such as its configuration)."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about files that are not its own
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:
        raise error(f"{unreadable} ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise error(wrong_format)
    if obj.get("version", 0) > version:
        raise error(f"{path} was written by a newer flowgan ({fmt} version {obj['version']})")
    return obj


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Load and validate a flowgan checkpoint (on the CPU; ``mmap``: tensors mapped, not read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return load_versioned(
        path, FORMAT, VERSION,
        unreadable=f"checkpoint {path} is corrupt or not a flowgan checkpoint",
        wrong_format=f"{path} is not a flowgan checkpoint", mmap=mmap,
    )  # fmt: skip


#: ``which="auto"``: the checkpoint with the best sample score, as the paper evaluates its models
#: (§5, Table 3, Figure 4): best MODE (MNIST), else best Inception score, else best validation
#: NLL, else the latest.
AUTO_CHECKPOINTS = ("best_mode", "best_is", "best_nll", "latest")


def _written_names(run_dir: Path) -> set[str] | None:
    """The checkpoints the trainer writes into this run (``latest``, ``best_nll``, ``best_<score>``
    for each score of its configuration), or ``None`` when it has no readable configuration."""
    try:
        config = read_run_config(run_dir)
    except FlowganError:
        return None
    if config is None:
        return None
    return {"latest", "best_nll", *(f"best_{s}" for s in config.score_metrics)}


def choose_checkpoint(run_or_ckpt: str | Path, which: str = "best_nll") -> tuple[Path, str]:
    """``(path, name)``: the checkpoint of a run that ``which`` selects, by the one rule of flowgan.

    * A checkpoint file is itself (its name is the file's stem).
    * ``which="auto"``: the first of :data:`AUTO_CHECKPOINTS` the run has (best_mode, best_is,
      best_nll, latest).
    * A name (``best_nll``, ``latest``, ``best_mode``, ...): ``checkpoints/<which>.pt``. A best
      checkpoint the run writes but has not written yet (``best_nll`` before the first
      evaluation, ``best_<score>`` of a score it computes before the first finite one) falls back
      to ``latest``; a name the run never writes (a score it does not compute, a typo) is a
      :class:`~flowgan.errors.CheckpointError` naming the checkpoints it has. Without a
      readable ``config.json`` every ``best_*`` name falls back to ``latest``.
    """
    p = Path(run_or_ckpt)
    if p.is_file():
        return p, p.stem
    if not p.is_dir():
        raise CheckpointError(f"{p} is neither a run directory nor a checkpoint file")
    ckdir = p / "checkpoints"
    if which == "auto":
        names = list(AUTO_CHECKPOINTS)
    else:
        written = _written_names(p)
        falls_back = which.startswith("best_") if written is None else which in written
        names = [which, "latest"] if falls_back else [which]
    for name in names:
        cand = checkpoint_path(p, name)
        if cand.is_file():
            return cand, name
    have = sorted(c.stem for c in ckdir.glob("*.pt")) if ckdir.is_dir() else []
    if not have:
        raise CheckpointError(f"{p} has no checkpoints ({ckdir}/{which}.pt or latest.pt)")
    raise CheckpointError(f"{p} has no checkpoint {which!r}; it has {', '.join(have)}")


def config_from_dict(values: dict[str, Any], where: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from a saved dict, leniently (unknown keys dropped, missing ones
    defaulted); an invalid value is a :class:`CheckpointError` naming ``where``."""
    try:
        return TrainConfig.from_dict(values)
    except (FlowganError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{where}: the saved training configuration is invalid: {str(e).splitlines()[0]}"
        ) from None


def read_run_config(run: str | Path) -> TrainConfig | None:
    """The configuration of a run: its latest checkpoint's (the one the weights were trained with,
    resumes included: the one source of truth), else ``RUN/config.json``'s for a run without a
    readable checkpoint (read as :func:`config_from_dict` does), else ``None``."""
    latest = checkpoint_path(run)
    if latest.is_file():
        try:
            values = load_checkpoint(latest, mmap=True).get("config")  # the weights are not read
        except CheckpointError:
            values = None
        if isinstance(values, dict) and values:
            return config_from_dict(values, latest)
    path = Path(run) / "config.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    values = info.get("config") if isinstance(info, dict) else None
    return config_from_dict(values, path) if isinstance(values, dict) else None


#: what ``flowgan train --resume`` may change in a run's configuration
RESUMABLE = ("epochs", "max_steps", "time_limit")


def record_run_config(run: str | Path, info: dict[str, Any], stored: dict[str, Any]) -> None:
    """On resume: rewrite ``RUN/config.json`` (atomically) from ``info``, whose configuration is the
    checkpoint's as resumed, so that config.json never states what the run did not use. A file that
    was missing, unreadable or disagreed with the checkpoint's configuration ``stored`` (beyond
    :data:`RESUMABLE`) is named in a one-line warning with the fields."""
    import warnings

    path = Path(run) / "config.json"
    try:
        old = json.loads(path.read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        old = None
    if not isinstance(old, dict):
        warnings.warn(f"{path} was missing or unreadable; rewritten from the checkpoint", RuntimeWarning, stacklevel=2)
    else:
        stored = json.loads(json.dumps(stored))  # tuples as JSON lists, as config.json holds them
        differ = sorted(k for k in set(old) | set(stored) if k not in RESUMABLE and old.get(k) != stored.get(k))
        if differ:
            warnings.warn(
                f"{path} disagreed with the checkpoint in {', '.join(differ)}; rewritten from the checkpoint",
                RuntimeWarning,
                stacklevel=2,
            )
    write_json(path, info, sort_keys=True)


def resolve_checkpoint(run_or_ckpt: str | Path, which: str = "best_nll") -> Path:
    """The path of :func:`choose_checkpoint`."""
    return choose_checkpoint(run_or_ckpt, which)[0]


def load_model(
    run_or_ckpt: str | Path,
    which: str = "best_nll",
    device: str | torch.device = "cpu",
    *,
    model: torch.nn.Module | None = None,
):
    """``(model, checkpoint)``: the generator of a run or checkpoint, in eval mode, in float32,
    rebuilt from the checkpoint's recipe (:mod:`flowgan.components`: a built-in name or an import
    path) or, for a run whose generator was passed from Python, ``model`` with the weights loaded."""
    from .components import generator_from_recipe

    ckpt = load_checkpoint(resolve_checkpoint(run_or_ckpt, which))
    try:
        model = generator_from_recipe(ckpt["model_spec"]) if model is None else model
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint does not match its model spec: {str(e).splitlines()[0][:200]}") from None
    return model.to(device=device, dtype=torch.float32).eval(), ckpt
