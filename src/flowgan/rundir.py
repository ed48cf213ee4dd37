"""Run directories: their lock, their atomic creation, metrics.jsonl and TensorBoard.

A run directory holds::

    config.json          the resolved TrainConfig (+ model and environment), written first
    metrics.jsonl        one JSON object per line: {"kind": "train" | "eval" | "event", "step", ...}
    checkpoints/         latest.pt, best_nll.pt (and best_<score>.pt), written atomically
    samples/             step_000000.png, ... a grid of G(z) for a fixed z at every evaluation
    tb/                  TensorBoard events (when tensorboard is installed)
    .lock                while a process trains the run: its pid and host (see RunLock)

A fresh run is built in ``.NAME.creating-PID`` beside ``NAME`` and renamed into place once
config.json and the first checkpoint exist (:class:`RunDirectory`): a run directory is a
resumable run or absent. metrics.jsonl never gets ahead of the latest checkpoint.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from .atomic import is_temporary, write_json, write_text
from .checkpoint import atomic_save, checkpoint_path
from .errors import CheckpointError, FlowganError

#: the lock file of a run directory (its content names the holder)
LOCK_NAME = ".lock"


class RunLock:
    """Exclusive use of a run directory: an ``fcntl.flock`` on ``DIR/.lock``, which holds the
    holder's pid, host and start time. The kernel drops the lock when its process dies, so a lock
    file left by a killed process is stale and simply taken over."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._file = None

    def acquire(self) -> RunLock:
        import fcntl

        for _ in range(10):
            f = open(self.path, "a+")  # noqa: SIM115 - held open (locked) until release()
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    warnings.warn(
                        f"{self.path.parent}: this file system has no locks; the run directory is not locked",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    f.close()
                    return self
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    f.close()
                    raise
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                raise FlowganError(
                    f"run directory {self.path.parent} is in use by {holder}; wait for it to end or stop it"
                )
            try:  # the previous holder may have removed the file while we opened it: lock the current one
                current = os.path.samestat(os.fstat(f.fileno()), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
                f.flush()
                self._file = f
                return self
            f.close()
        raise FlowganError(f"cannot lock run directory {self.path.parent}")

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        self._file.close()  # closing drops the flock
        self._file = None


def staging_dir(run_dir: Path, pid: int) -> Path:
    """Where process ``pid`` builds ``run_dir`` before renaming it into place (:func:`staging_dirs`: all)."""
    return run_dir.parent / f".{run_dir.name}.creating-{pid}"


def staging_dirs(run_dir: Path) -> list[Path]:
    return sorted(run_dir.parent.glob(f".{glob.escape(run_dir.name)}.creating-*"))


def staged_run(path: Path) -> Path | None:
    """The run directory that ``path`` is a staging directory of, else ``None``."""
    match = re.fullmatch(r"\.(.+)\.creating-\d+", path.name)
    return path.parent / match.group(1) if match else None


#: what a run directory may hold before its first checkpoint
RUN_ENTRIES = {
    "config.json",
    "metrics.jsonl",
    "checkpoints",
    "samples",
    "tb",
    "eval",
    LOCK_NAME,
}


#: what training alone writes in a run directory (and ``flowgan reproduce`` in its own): no other
#: command's output may land on them
RUN_OWNED = ("config.json", "metrics.jsonl", "checkpoints", "tb", LOCK_NAME)
REPRODUCTION_OWNED = ("reproduce.json", "claims.json", "report.md", "runs")


def check_output(path: str | Path | None, flag: str) -> None:
    """Refuse (one line) an output path that would overwrite a file a run directory or a
    reproduction owns (:data:`RUN_OWNED`, :data:`REPRODUCTION_OWNED`): an ``evaluate -o`` onto a
    checkpoint would leave the run unresumable. Checked before any work starts."""
    if path is None:
        return
    target = Path(path).expanduser().resolve()
    for base in target.parents:
        run = (base / "config.json").is_file() and (
            (base / "checkpoints").is_dir() or (base / "metrics.jsonl").is_file()
        )
        owned = RUN_OWNED if run else REPRODUCTION_OWNED if (base / "reproduce.json").is_file() else ()
        if not owned:
            continue
        parts = target.relative_to(base).parts
        first = parts[0]
        # only the nearest run or reproduction decides: a file beside a run's own files (inside
        # a reproduction's runs/) is allowed
        if first in owned and not (first == "runs" and len(parts) > 2):
            what = "run" if run else "reproduction"
            raise FlowganError(
                f"{flag} {path} would overwrite {first} of the {what} {base}, which only "
                f"{'training' if run else 'flowgan reproduce'} writes; choose another path"
            )
        return


def failed_start(run_dir: Path) -> bool:
    """Whether ``run_dir`` is what a start that died before its first checkpoint left (flowgan
    before atomic creation): config.json, no checkpoint, only flowgan's files, no live holder."""
    if not (run_dir / "config.json").is_file() or checkpoint_path(run_dir).exists():
        return False
    if any(p.name not in RUN_ENTRIES and not is_temporary(p.name) for p in run_dir.iterdir()):
        return False
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except (FlowganError, OSError):
        return False
    lock.release()
    return True


def jsonable(obj):
    import dataclasses

    d = dataclasses.asdict(obj)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


#: the fields of a metrics record that hold text; every other field holds a number, a boolean or null
TEXT_FIELDS = frozenset({"kind", "classifier", "collapse_classifier", "event", "message", "signal", "stopped_by"})


def well_formed(record: Any) -> bool:
    """Whether ``record`` has the shape of a metrics.jsonl record: an object with a text ``kind``,
    an integer ``step >= 0``, text in :data:`TEXT_FIELDS` and numbers (or null) elsewhere."""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return False
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return False
    for key, value in record.items():
        if key in TEXT_FIELDS:
            if not isinstance(value, str):
                return False
        elif value is not None and not isinstance(value, (int, float)):
            return False
    return True


def read_records(path: str | Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The one reader of a ``metrics.jsonl``: ``([(line, record), ...], skipped)`` where every
    line that is cut (by a kill), not UTF-8, not JSON or not :func:`well_formed` is skipped and
    counted the same way; a warning names the file and the count. A missing file reads as empty."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    out, skipped = [], 0
    for chunk in raw.split(b"\n"):
        if not chunk.strip():
            continue
        try:
            line = chunk.decode("utf-8")
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if well_formed(record):
            out.append((line, record))
        else:
            skipped += 1
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed line(s)", RuntimeWarning, stacklevel=2)
    return out, skipped


def truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from (they will be redone), and
    malformed ones (:func:`read_records`)."""
    if not path.exists():
        return
    records, _ = read_records(path)
    keep = [line for line, record in records if record["step"] <= step]
    write_text(path, "".join(k + "\n" for k in keep))


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The well-formed records of a run's ``metrics.jsonl`` (optionally only those of one ``kind``;
    malformed lines skipped and counted by :func:`read_records`)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FlowganError(f"{run_dir} has no metrics.jsonl")
    return [r for _, r in read_records(path)[0] if kind is None or r["kind"] == kind]


class RunDirectory:
    """A run directory as one training process uses it: created atomically, locked, logged to.

    ``active`` is False on the processes of a data-parallel run other than rank 0: they read the
    directory but write nothing (every writing method returns at once).
    """

    def __init__(self, path: str | Path, active: bool = True):
        self.path = Path(path)
        self.active = active
        self.final: Path | None = None  # while a fresh run is built in a staging directory
        self.lock: RunLock | None = None
        self.writer = None
        self._pending_tb: list[dict] = []
        self._metrics_size = 0  # bytes of metrics.jsonl when the latest checkpoint was saved
        self._checkpoint_stat: os.stat_result | None = None

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def latest(self) -> Path:
        return checkpoint_path(self.path)

    # ------------------------------------------------------------------ before training

    def resumable_checkpoint(self) -> Path:
        """The checkpoint a resume starts from, or a :class:`CheckpointError` saying why there is none."""
        latest = self.latest
        final = staged_run(self.path)
        if final is not None:  # the remains of an interrupted start: point at the run it was to become
            raise CheckpointError(
                f"{self.path} is the staging directory of a start that did not finish; start the run again "
                f"with flowgan train ... --out {final} (that removes it)"
            )
        if not latest.is_file() and not (self.path / "config.json").exists():
            started = " (its start was interrupted before the first checkpoint)" if staging_dirs(self.path) else ""
            raise CheckpointError(
                f"{self.path} holds no run to resume{started}; start it with flowgan train ... --out {self.path}"
            )
        if not latest.is_file():
            raise CheckpointError(
                f"{self.path} has no checkpoint: its start was interrupted before the first one; "
                f"start it again with flowgan train ... --out {self.path} (that replaces it)"
            )
        self._checkpoint_stat = latest.stat()
        return latest

    def check_fresh(self) -> None:
        """Refuse a directory that holds a run or anything else; the directory is created atomically
        (see :meth:`create`), so it may only be absent or empty, or the remains of a start that died
        before its first checkpoint (config.json and no checkpoint; those are replaced)."""
        d = self.path
        if d.exists() and not d.is_dir():
            raise FlowganError(f"run directory {d} exists and is not a directory; choose another --out")
        if checkpoint_path(d).exists():
            raise FlowganError(
                f"run directory {d} already holds a run; continue it with --resume {d} or choose another --out"
            )
        if d.is_dir() and any(d.iterdir()):
            if not failed_start(d):
                raise FlowganError(f"run directory {d} exists and is not empty; choose another --out")
        elif d.is_dir() and os.path.ismount(d):
            raise FlowganError(f"run directory {d} is a mount point; choose a directory inside it")

    def create(self, info: dict[str, Any]) -> None:
        """Start a fresh run: lock and fill a staging directory ``.NAME.creating-PID`` next to the
        run directory with ``config.json`` (``info``); :meth:`publish` renames it into place once
        the first checkpoint is written, so the run directory holds a whole run or nothing."""
        if not self.active:
            return
        self.check_fresh()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"cannot create the run directory: {e.strerror}", str(self.path)) from None
        for old in staging_dirs(self.path):  # starts that died: remove, unless one is alive
            lock = RunLock(old)
            try:
                lock.acquire()
            except FlowganError:
                raise FlowganError(
                    f"run directory {self.path} is being created by another process ({old}); choose another --out"
                ) from None
            except OSError:
                pass
            lock.release()
            shutil.rmtree(old, ignore_errors=True)
        self.final = self.path
        self.path = staging_dir(self.path, os.getpid())
        try:
            self.path.mkdir()
        except OSError as e:  # name the directory the user asked for, not the staging one
            self.path, self.final = self.final, None
            raise OSError(e.errno, f"cannot create the run directory: {e.strerror}", str(self.path)) from None
        self.lock = RunLock(self.path).acquire()
        write_json(self.path / "config.json", info, sort_keys=True)
        # TensorBoard starts in publish()

    def reopen(self) -> bool:
        """Lock the directory of a run to resume; True if its latest checkpoint changed since
        :meth:`resumable_checkpoint` read it (another process went on before we held the lock)."""
        if not self.active:
            return False
        self.lock = RunLock(self.path).acquire()
        seen, latest = self._checkpoint_stat, self.latest
        return (
            seen is not None
            and latest.is_file()
            and (latest.stat().st_ino, latest.stat().st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns)
        )

    def continue_log(self, step: int) -> None:
        """Resume logging at ``step``: remove temporary files of a killed writer, drop log lines
        past the checkpoint (they will be redone), open TensorBoard."""
        if not self.active:
            return
        for orphan in [*(self.path / "checkpoints").glob(".*"), *self.path.glob(".*")]:
            if is_temporary(orphan.name) and orphan.is_file():
                orphan.unlink()  # temporary files of a process killed while writing
        truncate_metrics(self.metrics, step)
        self._metrics_size = self.metrics.stat().st_size if self.metrics.exists() else 0
        self._open_writer()

    # ------------------------------------------------------------------ during training

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to metrics.jsonl and its numbers to TensorBoard."""
        if not self.active:
            return
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is None and self.final is not None:
            self._pending_tb.append(record)  # TensorBoard starts once the run directory exists
        if self.writer is not None:
            self._scalars(record)

    def _scalars(self, record: dict[str, Any]) -> None:
        for k, v in record.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def save(self, state: dict[str, Any], name: str = "latest") -> None:
        """Write checkpoint ``name`` atomically; if that fails (disk full, read-only), cut
        metrics.jsonl back to the latest checkpoint, so that the log never gets ahead of it."""
        if not self.active:
            return
        try:
            atomic_save(state, checkpoint_path(self.path, name))
        except OSError as e:
            if self.metrics.exists() and self.metrics.stat().st_size > self._metrics_size:
                os.truncate(self.metrics, self._metrics_size)
            if self.final is not None:  # name the run directory asked for, not the staging one
                raise OSError(e.errno, e.strerror, str(checkpoint_path(self.final, name))) from None
            raise
        if name == "latest":
            self._metrics_size = self.metrics.stat().st_size if self.metrics.exists() else 0

    def publish(self) -> None:
        """Rename the staging directory of a fresh run (config.json + first checkpoint) into place."""
        if self.final is None:
            return
        final = self.final
        if final.is_dir() and failed_start(final):
            shutil.rmtree(final)
        try:
            os.rename(self.path, final)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise FlowganError(
                    f"run directory {final} was created by another process meanwhile; choose another --out"
                ) from None
            raise
        self.path, self.final = final, None
        self.lock.path = final / LOCK_NAME
        self._open_writer()
        pending, self._pending_tb = self._pending_tb, []
        if self.writer is not None:
            for record in pending:
                self._scalars(record)

    def _open_writer(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path / "tb"))
        except Exception:  # noqa: BLE001 - tensorboard is optional
            self.writer = None

    def close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        """Release the lock; a fresh run that never got its first checkpoint leaves nothing."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.final is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path, self.final = self.final, None
