"""``flowgan train``'s configuration flags, generated from the fields of :class:`~flowgan.config.TrainConfig`.

Each field declares its flag next to itself (:func:`flowgan.config.option`); this module turns
the declarations into :mod:`argparse` arguments (:func:`add_config_flags`) and the parsed
arguments back into :func:`~flowgan.config.resolve_config` options (:func:`config_options`).
A new training option is a new field: its flag follows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig


def parse_kv(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as JSON where it is JSON (``3``, ``true``, ``[1, 2]``), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def seed(text: str) -> int:
    """An argparse type for ``--seed``: an integer from 0 to 2**63 - 1 (what ``torch.manual_seed``
    takes), checked before any work starts; argparse's message names the flag."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1, got {text}")
    return value


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one :class:`TrainConfig` field."""

    field: str
    names: tuple[str, ...]  # the flag, then its aliases
    kind: type  # int, float, str, bool (a switch), dict (repeatable KEY=VALUE), tuple (comma-separated)
    help: str | None
    choices: tuple | None = None
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
    for flag in config_flags():
        if flag.kind is bool:
            parser.add_argument(*flag.names, dest=flag.field, action="store_true", default=None, help=flag.help)
            continue
        kwargs: dict[str, Any] = dict(dest=flag.field, help=flag.help, choices=flag.choices)
        if flag.kind is dict:
            kwargs.update(action="append", type=parse_kv, metavar="KEY=VALUE")
        else:
            kwargs.update(type=str if flag.kind is tuple else flag.kind)
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
