"""Compare two ``flowgan reproduce`` output directories number by number and verdict by verdict.

    python benchmarks/compare_reproductions.py A B [--rtol 1e-4] [--atol 1e-8] [--ignore KEY ...]
        [--strict] [--show 20]

Walks every ``*.json`` and ``*.jsonl`` file present in both directories (reproduce.json, claims.json,
eval/*.json, analyses/*.json, runs/*/config.json, runs/*/metrics.jsonl, ...; a ``.jsonl`` file is
compared line by line) and compares, at the same place in both:

* every number (ints and floats): equal within tolerance if ``|a - b| <= atol + rtol * max(|a|, |b|)``
  (NaN equals NaN); the relative difference reported is ``|a - b| / max(|a|, |b|)``;
* every verdict string exactly: the values of the keys ``verdict``, ``status`` and ``stopped_by``,
  and any string that reads PASS, FAIL, INCONCLUSIVE or N/A (e.g. reproduce.json's
  ``stages.report.claims``);
* every boolean exactly (the claims' derived checks: ``far``, ``rises``, ``at_boundary``...).

Other strings (evidence texts, labels, descriptions) are not judged: the ones that differ are
counted and a few shown. Figures (PNG) and report.md are not compared (report.md is rendered from
these JSON files).

Ignored keys (their whole subtree), case-insensitive:

* timings and durations: ``seconds``, ``time``, ``elapsed``, ``wall``, ``duration``, ``calibration``,
  ``steps_per_s``, ``images_per_s``, ``eta``, ``time_limit`` (a reproduction sets each run's to the
  budget left when it starts), and every key ending in ``_seconds``, ``_minutes`` (so
  ``budget_minutes``, a safety net, not a result), ``_time`` or ``_ms``;
* paths: ``run``, ``run_dir``, ``checkpoint``, ``data_dir``, ``path``, ``out``, ``figure``,
  ``sample_grids``, ``spectra``, and keys ending in ``_path`` or ``_dir``;
* dates: ``date``, ``created``, ``started``, ``finished``, ``timestamp``;
* versions and the machine: ``version``, ``versions``, ``environment``, ``flowgan``, ``torch``,
  ``python``, ``host``, ``hostname``, ``pid``, ``threads``.

``--ignore KEY ...`` adds more.

Exit status 1 when any number is beyond the tolerance, any verdict or boolean differs, or the two
disagree in kind (a number against a string or null, lists of different lengths); 0 otherwise.
Keys or files present on one side only are listed but fail only with ``--strict`` (a newer revision
may record more).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

VERDICT_KEYS = {"verdict", "status", "stopped_by"}
VERDICT_VALUES = {"PASS", "FAIL", "INCONCLUSIVE", "N/A"}
IGNORED = {
    # timings and durations
    "seconds",
    "time",
    "elapsed",
    "wall",
    "duration",
    "calibration",
    "steps_per_s",
    "images_per_s",
    "eta",
    "time_limit",
    # paths
    "run",
    "run_dir",
    "checkpoint",
    "data_dir",
    "path",
    "out",
    "figure",
    "sample_grids",
    "spectra",
    # dates
    "date",
    "created",
    "started",
    "finished",
    "timestamp",
    # versions and the machine
    "version",
    "versions",
    "environment",
    "flowgan",
    "torch",
    "python",
    "host",
    "hostname",
    "pid",
    "threads",
}
IGNORED_SUFFIXES = ("_seconds", "_minutes", "_time", "_ms", "_path", "_dir")


class Comparison:
    def __init__(self, rtol: float, atol: float, ignore: set[str]):
        self.rtol, self.atol, self.ignore = rtol, atol, {k.lower() for k in ignore}
        self.numbers = self.verdicts = self.booleans = 0
        self.largest = (0.0, "", None, None)  # (relative difference, where, a, b)
        self.beyond: list[tuple[float, str, object, object]] = []
        self.verdicts_differ: list[tuple[str, object, object]] = []
        self.booleans_differ: list[tuple[str, object, object]] = []
        self.mismatched: list[tuple[str, str]] = []  # kinds or lengths that disagree
        self.one_sided: list[tuple[str, str]] = []  # keys present on one side only
        self.strings_differ: list[tuple[str, object, object]] = []

    def ignored(self, key: str) -> bool:
        k = key.lower()
        return k in IGNORED or k in self.ignore or k.endswith(IGNORED_SUFFIXES)

    def walk(self, a, b, where: str, key: str = "") -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            sep = "" if where.endswith(":") else "."
            for k in [*a, *(k for k in b if k not in a)]:
                if self.ignored(str(k)):
                    continue
                if k not in b or k not in a:
                    self.one_sided.append((f"{where}{sep}{k}", "only in A" if k in a else "only in B"))
                    continue
                self.walk(a[k], b[k], f"{where}{sep}{k}", str(k))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.mismatched.append((where, f"{len(a)} vs {len(b)} items"))
            for i, (x, y) in enumerate(zip(a, b)):
                self.walk(x, y, f"{where}[{_item_name(x, i)}]", key)
        elif isinstance(a, bool) or isinstance(b, bool):
            if isinstance(a, bool) and isinstance(b, bool):
                self.booleans += 1
                if a != b:
                    self.booleans_differ.append((where, a, b))
            else:
                self.mismatched.append((where, f"{a!r} vs {b!r}"))
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            self.number(float(a), float(b), where)
        elif isinstance(a, str) and isinstance(b, str):
            if key.lower() in VERDICT_KEYS or a in VERDICT_VALUES or b in VERDICT_VALUES:
                self.verdicts += 1
                if a != b:
                    self.verdicts_differ.append((where, a, b))
            elif a != b:
                self.strings_differ.append((where, a, b))
        elif a is None and b is None:
            pass
        elif type(a) is not type(b):
            self.mismatched.append((where, f"{_short(a)} vs {_short(b)}"))

    def number(self, a: float, b: float, where: str) -> None:
        self.numbers += 1
        if a == b or (math.isnan(a) and math.isnan(b)):
            return
        scale = max(abs(a), abs(b))
        diff = abs(a - b)
        rel = diff / scale if math.isfinite(diff) and scale > 0 else math.inf
        if rel > self.largest[0] or not self.largest[1]:
            self.largest = (rel, where, a, b)
        if not diff <= self.atol + self.rtol * scale:  # also true for NaN against a number
            self.beyond.append((rel, where, a, b))

    @property
    def failed(self) -> bool:
        return bool(self.beyond or self.verdicts_differ or self.booleans_differ or self.mismatched)


def _item_name(item, index: int) -> str:
    """A list item's name in a location: its ``key`` or ``label`` where it has one (claims, runs)."""
    if isinstance(item, dict):
        for field in ("key", "label"):
            if isinstance(item.get(field), str):
                return item[field]
    return str(index)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pair(row) -> str:
    return f"{row[0]}: {_short(row[1])} vs {_short(row[2])}"


def load(path: Path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def json_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="a reproduction's output directory")
    p.add_argument("b", type=Path, help="the other one")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-8, help="absolute tolerance (default 1e-8)")
    p.add_argument("--ignore", nargs="+", default=[], metavar="KEY", help="more keys to leave out")
    p.add_argument("--strict", action="store_true", help="keys or files present on one side only fail too")
    p.add_argument("--show", type=int, default=20, help="differences listed per kind (default 20)")
    args = p.parse_args()
    for d in (args.a, args.b):
        if not d.is_dir():
            p.error(f"{d} is not a directory")
    files_a, files_b = json_files(args.a), json_files(args.b)
    common = sorted(files_a & files_b)
    if not common:
        p.error("no JSON file is present in both directories")

    c = Comparison(args.rtol, args.atol, set(args.ignore))
    for rel in common:
        a, b = load(args.a / rel), load(args.b / rel)
        if rel.endswith(".jsonl"):
            if len(a) != len(b):
                c.mismatched.append((rel, f"{len(a)} vs {len(b)} lines"))
            for i, (x, y) in enumerate(zip(a, b)):
                c.walk(x, y, f"{rel}:line {i + 1}:")
        else:
            c.walk(a, b, f"{rel}:")

    def show(title: str, rows: list, fmt) -> None:
        if rows:
            print(f"{title} ({len(rows)}):")
            for row in rows[: args.show]:
                print(f"  {fmt(row)}")
            if len(rows) > args.show:
                print(f"  ... and {len(rows) - args.show} more")

    print(f"A: {args.a}\nB: {args.b}")
    print(f"files compared: {len(common)} (JSON/JSONL present in both)")
    show("files only in A", sorted(files_a - files_b), str)
    show("files only in B", sorted(files_b - files_a), str)
    print(
        f"values compared: {c.numbers} numbers (rtol {args.rtol:g}, atol {args.atol:g}), "
        f"{c.verdicts} verdict strings, {c.booleans} booleans"
    )
    rel, where, a, b = c.largest
    if where:
        print(f"largest relative difference: {rel:.3g} at {where} ({a!r} vs {b!r})")
    else:
        print("largest relative difference: 0 (all numbers identical)")
    c.beyond.sort(key=lambda r: -r[0])
    show("numbers beyond tolerance", c.beyond, lambda r: f"{r[1]}: {r[2]!r} vs {r[3]!r} (relative {r[0]:.3g})")
    show("verdicts that differ", c.verdicts_differ, lambda r: f"{r[0]}: {r[1]} vs {r[2]}")
    show("booleans that differ", c.booleans_differ, lambda r: f"{r[0]}: {r[1]} vs {r[2]}")
    show("kinds or lengths that differ", c.mismatched, lambda r: f"{r[0]}: {r[1]}")
    show("keys on one side only", c.one_sided, lambda r: f"{r[0]}: {r[1]}")
    show("other strings that differ (not judged)", c.strings_differ, _pair)
    one_sided = bool(c.one_sided or files_a ^ files_b)
    failed = c.failed or (args.strict and one_sided)
    if failed:
        print("result: DIFFERENT (exit 1)")
    else:
        print("result: the same within tolerance" + (" (keys or files on one side only: listed above)" * one_sided))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
