"""Outputs that are whole or absent.

Every file flowgan writes (checkpoints, ``config.json``, ``reproduce.json``, evaluation and
analysis JSON, Markdown tables, figures, sample grids) is written to a temporary file in the
same directory, flushed to disk, and renamed over its target (``os.replace``, atomic on POSIX).
A process killed or interrupted while writing leaves the old file (or none) and a hidden
temporary one, never a cut file that looks complete. Analyses that write several files write
their JSON record last, so a directory without it is visibly unfinished.

The temporary name keeps the target's suffix (``.NAME.tmpPID.SUFFIX``) so that writers which
choose the format by extension (matplotlib, PIL, numpy) write the right one;
:func:`is_temporary` recognises such names so that a resumed run can remove them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TEMPORARY = re.compile(r"^\..+\.tmp\d*(\.[^.]+)?$")


def temporary_name(path: str | Path) -> Path:
    """Where :func:`replacing` writes ``path`` before renaming it: hidden, beside it, the same suffix."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_name`'s (a writer killed before its rename)."""
    return bool(_TEMPORARY.match(name))


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new contents to; when the block ends without an
    exception the file is synced and renamed over ``path``, otherwise removed (``path`` unchanged).

    >>> with replacing("out/figure.png") as tmp:   # doctest: +SKIP
    ...     fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # tensors, arrays, numpy scalars
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """``obj`` as indented JSON (tensors and arrays as lists, paths as strings) with a final
    newline, written atomically; returns ``path``."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=_json_default) + "\n")


def save_figure(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically (the format from its suffix), then close ``fig``."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or None, **savefig)
    finally:
        plt.close(fig)
    return path
