"""The README's "Your own flow" runs as written, with its step counts cut to 2 (and its run
directories moved into a temporary folder): the Python snippet and the first CLI line."""

import json
import re
import shlex
from pathlib import Path

from flowgan.cli import main

ROOT = Path(__file__).parent.parent


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Your own flow", 1)[1].split("\n## ", 1)[0]


def test_the_python_snippet_trains_a_zuko_nsf_with_the_hybrid_objective(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", _section(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    assert "max_steps=300, eval_every=100" in code and '"runs/nsf-hybrid"' in code
    code = code.replace("max_steps=300, eval_every=100", "max_steps=2, eval_every=2")
    code = code.replace('"runs/nsf-hybrid"', repr(str(tmp_path / "nsf-hybrid")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["summary"]["step"] == 2 and namespace["grid"].shape == (16, 1, 28, 28)
    info = json.loads((tmp_path / "nsf-hybrid" / "config.json").read_text())
    assert info["config"]["model"] == "python:zuko NSF" and info["config"]["lam"] == 1.0


def test_the_cli_line_trains_the_example_factory(tmp_path, monkeypatch):
    line = re.search(r"```bash\n(flowgan train [^\n]*)\n", _section()).group(1)
    args = shlex.split(line)[1:]
    assert args[args.index("--max-steps") + 1] == "300"
    args[args.index("--max-steps") + 1] = "2"
    args[args.index("--out") + 1] = str(tmp_path / "nsf-cli")
    monkeypatch.chdir(ROOT)  # the factory's path is relative to the repository
    assert main([*args, "--eval-every", "2", "--no-progress"]) == 0
    info = json.loads((tmp_path / "nsf-cli" / "config.json").read_text())
    assert info["config"]["model"] == f"{ROOT.resolve() / 'examples' / 'own_flows.py'}:zuko_nsf"
