"""Command-line flags: ``flowgan train``'s, generated from :class:`~flowgan.config.TrainConfig`,
and the argparse types every command uses so that each flag is checked before any work starts.

Each field declares its flag next to itself (:func:`flowgan.config.option`); this module turns
the declarations into :mod:`argparse` arguments (:func:`add_config_flags`) and the parsed
arguments back into :func:`~flowgan.config.resolve_config` options (:func:`config_options`).
A new training option is a new field: its flag follows, checked by the field's
:class:`~flowgan.config.Bound`.

The types (:func:`integer`, :func:`number`, :func:`names`, :func:`device`, :func:`seed`) raise
``argparse.ArgumentTypeError``, so a bad value is refused while the command line is parsed,
with argparse's one line naming the flag (``argument --lr: must be > 0, got -1``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Bound, TrainConfig


def parse_kv(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as JSON where it is JSON (``3``, ``true``, ``[1, 2]``), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _typed(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    parse.__name__ = name  # argparse names the type in some of its messages
    return parse


def bounded(kind: type, bound: Bound | None) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (``int`` or ``float``) within ``bound``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if bound is not None and not bound.admits(value):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return _typed(parse, kind.__name__)


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (inclusive; no upper end by default)."""
    return bounded(int, Bound(low, high))


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from ``low`` (exclusive with ``low_open``) to ``high``."""
    return bounded(float, Bound(low, high, low_open=low_open))


#: ``--seed`` of every command: what ``torch.manual_seed`` takes
seed = integer(0, 2**63 - 1)


def names(choices: Sequence[str], *, what: str = "name") -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of ``choices``, at least one, in order."""

    def parse(text: str) -> list[str]:
        out = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in out if n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(choices)}")
        if not out:
            raise argparse.ArgumentTypeError(f"expected at least one {what} of {', '.join(choices)}")
        return list(dict.fromkeys(out))

    return _typed(parse, what)


def device(text: str) -> str:
    """An argparse type for ``--device``: ``auto``, or a device this machine has (``cpu``, ``cuda``,
    ``cuda:1``, ...), checked with :func:`flowgan.runtime.resolve_device`; returns the text."""
    from .errors import FlowganError
    from .runtime import resolve_device

    try:
        resolve_device(text)
    except FlowganError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one :class:`TrainConfig` field."""

    field: str
    names: tuple[str, ...]  # the flag, then its aliases
    kind: type  # int, float, str, bool (a switch), dict (repeatable KEY=VALUE), tuple (comma-separated)
    help: str | None
    choices: tuple | None = None
    check: str | None = None  # a type of this module that checks the value: dataset, classifier, device
    bound: Bound | None = None  # the field's (for a scaled flag: the flag's value's, e.g. minutes >= 0)
    scale: float | None = None  # the field's value is the flag's times this
    resumable: bool = False  # flowgan train --resume may change it
    shortcuts: tuple[tuple[str, str, tuple, str], ...] = ()  # (flag, key, choices, help): one key of a dict

    @property
    def name(self) -> str:
        return self.names[0]


def config_flags() -> list[Flag]:
    """The flags of :class:`TrainConfig`'s fields, ``--preset`` first, then in field order.

    Fields declared with ``no_flag="reason"`` have none."""
    hints = typing.get_type_hints(TrainConfig)
    flags = []
    for f in sorted(dataclasses.fields(TrainConfig), key=lambda f: f.name != "preset"):
        meta = f.metadata
        if "no_flag" in meta:
            continue
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        flags.append(
            Flag(
                field=f.name,
                names=(meta.get("flag", "--" + f.name.replace("_", "-")), *meta.get("aliases", ())),
                kind=typing.get_origin(kinds[0]) or kinds[0],
                help=meta["help"],
                choices=meta.get("choices"),
                check=meta.get("check"),
                bound=meta.get("bound"),
                scale=meta.get("scale"),
                resumable=meta.get("resumable", False),
                shortcuts=tuple((name, *spec) for name, spec in meta.get("shortcuts", {}).items()),
            )
        )
    return flags


def excluded_fields() -> dict[str, str]:
    """:class:`TrainConfig` fields without a flag, with the reason."""
    return {f.name: f.metadata["no_flag"] for f in dataclasses.fields(TrainConfig) if "no_flag" in f.metadata}


def _dest(flag_name: str) -> str:
    return flag_name.lstrip("-").replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One argument per flag of :func:`config_flags`; every default is ``None``: not given."""
    checks = {"dataset": dataset, "classifier": classifier, "device": device}  # Flag.check -> argparse type
    for flag in config_flags():
        if flag.kind is bool:
            parser.add_argument(*flag.names, dest=flag.field, action="store_true", default=None, help=flag.help)
            continue
        kwargs: dict[str, Any] = dict(dest=flag.field, help=flag.help, choices=flag.choices)
        if flag.kind is dict:
            kwargs.update(action="append", type=parse_kv, metavar="KEY=VALUE")
        else:
            kind = checks[flag.check] if flag.check else str
            kwargs.update(type=bounded(flag.kind, flag.bound) if flag.kind in (int, float) else kind)
            if flag.choices is None:
                kwargs["metavar"] = _dest(flag.name).upper()
        parser.add_argument(*flag.names, **kwargs)
        for name, _key, choices, help in flag.shortcuts:
            parser.add_argument(name, dest=_dest(name), choices=choices, help=help)


def config_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line, as :func:`~flowgan.config.resolve_config` options
    (``None``: not given). Raises ``ValueError`` when a shortcut and its ``KEY=VALUE`` disagree."""
    options: dict[str, Any] = {}
    for flag in config_flags():
        value = getattr(args, flag.field)
        if flag.kind is dict:
            value = dict(value or ())
            for name, key, _choices, _help in flag.shortcuts:
                short = getattr(args, _dest(name))
                if short is not None:
                    if value.get(key, short) != short:
                        raise ValueError(f"{name} and {flag.name} {key}=... disagree")
                    value[key] = short
            value = value or None
        elif value is not None and flag.kind is tuple:
            value = tuple(s for s in value.split(",") if s)
        elif value is not None and flag.scale is not None:
            value = flag.scale * value
        options[flag.field] = value
    return options


def resumable_flags() -> list[Flag]:
    """The flags that ``flowgan train --resume`` may change (the run's length)."""
    return [flag for flag in config_flags() if flag.resumable]


def dataset(text: str) -> str:
    """An argparse type for ``--dataset``: a dataset name (:data:`flowgan.data.DATASETS`) or an
    existing ``.npz`` file; whether its files are present is the loader's to say."""
    from pathlib import Path

    from .data import DATASETS

    if text.endswith(".npz"):
        if not Path(text).expanduser().is_file():
            raise argparse.ArgumentTypeError(f"{text} does not exist")
    elif text not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose from {', '.join(DATASETS)} or a .npz file")
    return text


def classifier(text: str) -> str:
    """An argparse type for ``--classifier``: a classifier name or file that exists
    (:func:`flowgan.metrics.classifiers.locate_classifier`); it is loaded later."""
    from .errors import FlowganError
    from .metrics.classifiers import locate_classifier

    try:
        locate_classifier(text)
    except FlowganError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
