"""The shape of the package (docs/architecture.md), read from the source with ``ast``, nothing imported:
no module over 450 lines; no function over 60 lines in the trainer package ``flowgan.training``;
only the trainer itself, ``flowgan.cli`` and ``flowgan.reproduce.pipeline`` import the trainer.
No import cycles: tests/test_imports.py."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flowgan"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
TRAINER = "flowgan.training"
#: the modules outside the trainer package that may import it
TRAINER_IMPORTERS = {"flowgan.cli", "flowgan.reproduce.pipeline"}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = SRC) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imported_modules(path: Path, name: str) -> set[str]:
    """Every module that an import statement anywhere in ``path`` names (top level, in functions,
    under ``if TYPE_CHECKING:``), relative imports resolved; ``from m import x`` names ``m`` and
    ``m.x`` (x may be a submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found |= {target} | {f"{target}.{a.name}" for a in node.names}
    return found


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every ``def``/``async def`` in ``path``, methods and
    nested functions included. A function's lines run from its ``def`` (decorators included) to its
    last line, less the lines of the functions and classes defined inside it: those are counted
    separately, as functions of their own."""
    out = []

    def span(node) -> int:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return node.end_lineno - first + 1

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    inner = sum(span(n) for n in _definitions_directly_inside(child))
                    out.append((name, child.lineno, span(child) - inner))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), str(path)), "")
    return out


def _definitions_directly_inside(node):
    """The functions and classes defined in ``node``'s body (at any depth of statements, but not
    inside another function or class)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield child
        else:
            yield from _definitions_directly_inside(child)


def in_trainer(module: str) -> bool:
    return module == TRAINER or module.startswith(TRAINER + ".")


# ----------------------------------------------------------------------------- the checkers, on made-up code


def test_the_checkers_measure_functions_and_resolve_imports(tmp_path):
    pkg = tmp_path / "flowgan"
    (pkg / "training").mkdir(parents=True)
    (pkg / "training" / "__init__.py").write_text("from .loop import fit\n")
    (pkg / "training" / "loop.py").write_text(
        "class T:\n"
        "    @staticmethod\n"
        "    def fit():\n"  # lines 2-8 (from the decorator) less the 2 of inner: 5
        "        x = 1\n"
        "        def inner():\n"
        "            return 2\n"
        "\n"
        "        return x\n"
        "    async def later(self):\n"
        "        pass\n"
    )
    (pkg / "evaluation.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .training import T\n"
    )
    (pkg / "runs.py").write_text("def f():\n    from . import training\n")
    (pkg / "cli.py").write_text("import flowgan.training.loop as loop\n")
    (pkg / "data.py").write_text("from .metrics.training import hook\nfrom .trainingdata import x\n")
    found = {m: imported_modules(p, m) for m, p in modules(pkg).items()}
    assert {m for m, names in found.items() if any(in_trainer(n) for n in names)} == {
        "flowgan.training",
        "flowgan.evaluation",
        "flowgan.runs",
        "flowgan.cli",
    }
    assert "flowgan.training.loop" in found["flowgan.training"]
    assert function_lengths(pkg / "training" / "loop.py") == [("T.fit", 3, 5), ("T.fit.inner", 5, 2), ("T.later", 9, 2)]


# ----------------------------------------------------------------------------- the package


def test_no_module_is_over_450_lines():
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    long = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}
    assert "flowgan.cli" in sizes and not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_of_the_trainer_package_is_over_60_lines():
    package = SRC / "training"
    if not package.is_dir():
        pytest.skip("src/flowgan/training/ is not a package (yet): the trainer is still the module training.py")
    long = [
        f"{p.relative_to(SRC.parent)}:{line} {name} ({n} lines)"
        for p in sorted(package.rglob("*.py"))
        for name, line, n in function_lengths(p)
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, "functions over 60 lines: " + "; ".join(long)


def test_only_the_cli_and_the_reproduction_import_the_trainer():
    found = {m: imported_modules(p, m) for m, p in modules().items()}
    assert "flowgan.analysis.gmm" in found["flowgan.analysis.kde"]  # the scan sees imports
    offenders = {
        m: sorted(n for n in names if in_trainer(n) and n in found)  # the trainer's modules it imports
        for m, names in found.items()
        if not in_trainer(m) and m not in TRAINER_IMPORTERS and any(in_trainer(n) for n in names)
    }
    assert not offenders, f"modules that import {TRAINER}: {offenders}"


#: calls that write a file, by attribute name
_WRITERS = {"write_text", "write_bytes", "savefig", "save", "savez", "savez_compressed", "copyfile"}
#: writes that are not atomic outputs, and why
_NOT_OUTPUTS = {
    (
        "rundir.py",
        "open",
    ): "metrics.jsonl is appended line by line (a cut last line is skipped by read_records) and the lock",
    ("checkpoint.py", "save"): "torch.save into the already-open temporary file of atomic_save",
    ("training/loop.py", "save"): "RunDirectory.save: atomic_save",
}


def _writes(path: Path) -> list[tuple[str, int, str]]:
    """(call, line, target) of each call in ``path`` that writes a file, with the source of what it writes to."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _WRITERS:
            name = func.attr
        elif isinstance(func, ast.Name) and func.id == "open":
            mode = (
                node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            )
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")):
                continue
            name = "open"
        else:
            continue
        found.append((name, node.lineno, ast.unparse(node)))
    return found


def test_every_output_is_written_through_a_temporary_file():
    """An interrupted command leaves no cut file that looks complete (issue 21): each write goes to
    the ``tmp`` of :func:`flowgan.atomic.replacing` (or is listed above with its reason)."""
    bad, excused = [], set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "atomic.py":
            continue
        for name, line, call in _writes(path):
            if (rel, name) in _NOT_OUTPUTS:
                excused.add((rel, name))
            elif "tmp" not in call:
                bad.append(f"{rel}:{line}: {call}")
    assert not bad, "writes that bypass flowgan.atomic:\n" + "\n".join(bad)
    assert excused == set(_NOT_OUTPUTS), f"stale exceptions: {set(_NOT_OUTPUTS) - excused}"


def test_the_write_scanner_finds_writes(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "def f(p, fig, tmp):\n    p.write_text('x')\n    fig.savefig(p)\n    open(p, 'a')\n    open(p)\n"
        "    fig.savefig(tmp)\n"
    )
    assert [(name, line) for name, line, _ in _writes(src)] == [
        ("write_text", 2),
        ("savefig", 3),
        ("open", 4),
        ("savefig", 6),
    ]
