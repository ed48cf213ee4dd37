"""Small pieces the analyses of saved runs share: names of runs, settings from plain dicts, JSON files."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import FlowganError

S = TypeVar("S")


def settings_from(cls: type[S], values: dict[str, Any] | None, what: str) -> S:
    """``cls(**values)`` for a frozen settings dataclass, with a key it does not have (a typo in a
    reproduce preset) a :class:`~flowgan.errors.FlowganError` naming the key and the known ones."""
    values = dict(values or {})
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise FlowganError(f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return cls(**values)


def run_labels(runs: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[str]:
    """The names of the runs in tables and legends: ``labels`` (one per run), else the directory
    names (the whole paths where two names coincide)."""
    if labels is not None:
        out = [str(label).strip() for label in labels]
        if len(out) != len(runs):
            raise FlowganError(f"{len(out)} labels for {len(runs)} runs (--labels needs one name per run)")
        return out
    names = [Path(r).name or str(r) for r in runs]
    if len(set(names)) != len(names):
        names = [str(r) for r in runs]
    return names
