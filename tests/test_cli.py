"""The command line: help, the train/evaluate/sample round trip, and one-line errors."""

import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from flowgan.checkpoint import load_checkpoint, load_model
from flowgan.cli import _done_line, main
from flowgan.rundir import read_metrics


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse (--help, usage errors)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, expected_code=2):
    assert code == expected_code
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(
        [
            "train",
            "--dataset",
            "mnist5k",
            "--model",
            "nice-small",
            "--max-steps",
            "4",
            "--eval-every",
            "2",
            "--out",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    return run_dir


def _listed(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["sample"]])
def test_help_names_every_option_and_runs_nothing(capsys, trained_run, tmp_path, command):
    """``--help`` after a command line that would train or write a file: that command's usage, naming
    each of its options (and, for ``flowgan`` itself, each command), exit 0, and nothing done."""
    import argparse

    from flowgan.cli import build_parser

    work = {
        (): [],
        ("train",): ["--dataset", "digits", "--max-steps", "1", "--out", str(tmp_path / "run"), "--no-progress"],
        ("evaluate",): [str(trained_run), "--split", "val", "-o", str(tmp_path / "e.json")],
        ("sample",): [str(trained_run), "-n", "4", "-o", str(tmp_path / "g.png")],
    }[tuple(command)]
    run_files = sorted(p.relative_to(trained_run) for p in trained_run.rglob("*"))
    code, out, err = run(capsys, *command, *work, "--help")
    assert code == 0 and err == "" and out.startswith(" ".join(["usage: flowgan", *command]) + " ")
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    parser = commands[command[0]] if command else parser
    options = [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings]
    assert "--help" in options and [o for o in options if not _listed(o, out)] == []
    if not command:
        assert [c for c in commands if not _listed(c, out)] == []
    assert list(tmp_path.iterdir()) == []  # no run, no JSON, no grid
    assert sorted(p.relative_to(trained_run) for p in trained_run.rglob("*")) == run_files


def test_train_writes_a_run(trained_run):
    assert json.loads((trained_run / "config.json").read_text())["config"]["max_steps"] == 4
    assert (trained_run / "checkpoints" / "latest.pt").is_file()


def test_evaluate_twice_gives_identical_numbers(capsys, trained_run, tmp_path):
    results = []
    for i in range(2):
        code, out, _ = run(capsys, "evaluate", str(trained_run), "--split", "test", "-o", str(tmp_path / f"e{i}.json"))
        assert code == 0
        results.append(json.loads((tmp_path / f"e{i}.json").read_text()))
        assert json.loads(out) == results[-1]
    assert results[0]["nll_nats"] == results[1]["nll_nats"] and results[0]["nll_bpd"] == results[1]["nll_bpd"]
    assert results[0]["n_images"] == 500 and results[0]["split"] == "test"


def test_evaluate_writes_into_the_run_by_default(capsys, trained_run):
    code, _, _ = run(capsys, "evaluate", str(trained_run), "--split", "val", "--checkpoint", "latest")
    assert code == 0
    assert json.loads((trained_run / "eval" / "latest_val.json").read_text())["step"] == 4


def test_sample_writes_a_grid(capsys, trained_run, tmp_path):
    code, _, _ = run(capsys, "sample", str(trained_run), "-n", "9", "-o", str(tmp_path / "g.png"))
    assert code == 0
    w, h = Image.open(tmp_path / "g.png").size
    assert w == h == 2 * (3 * 30 + 2)  # 3x3 tiles of 28 px + 2 px padding, scaled 2x


def test_sample_writes_beside_the_run_by_default(capsys, trained_run, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "sample", str(trained_run), "-n", "4", "--seed", "3")
    assert code == 0 and (trained_run / "samples" / "sample_best_nll_n4_seed3.png").is_file()
    assert list(tmp_path.iterdir()) == []  # nothing in the current directory


def test_done_line_says_what_stopped_the_run():
    summary = {
        "step": 129,
        "time": 183.4,
        "best": {"val_nll_nats": {"value": -812.5, "step": 120}},
        "run_dir": "r",
        "stopped_by": "time_limit",
    }
    line = _done_line(summary, 100.2, 180.0)
    assert line.startswith(
        "done: 129 generator updates (stopped by the time limit (--max-minutes 3), not by a step count)"
    )
    assert "1:40 wall in this process, 3:03 of training in all sessions" in line and "-812.50 nats at step 120" in line
    assert "(all steps done)" in _done_line({**summary, "stopped_by": "steps"}, 4000.0, None)
    assert "1:06:40 wall" in _done_line({**summary, "stopped_by": "steps"}, 4000.0, None)


def _without_timings(records):
    return [{k: v for k, v in r.items() if k not in ("time", "steps_per_s", "images_per_s")} for r in records]


def test_resume_via_cli_equals_an_uninterrupted_run(capsys, trained_run, tmp_path):
    """4 steps, then ``--resume --max-steps 6``: the same model, checkpoint and log as 6 steps at once."""
    import shutil

    import torch

    torch.set_default_dtype(torch.float32)  # as trained_run was trained (conftest: float64 in tests)
    resumed, full = tmp_path / "resumed", tmp_path / "full"
    shutil.copytree(trained_run, resumed)
    code, out, _ = run(capsys, "train", "--resume", str(resumed), "--max-steps", "6", "--no-progress")
    assert code == 0 and out.startswith("done: 6 generator updates (all steps done)")
    argv = ["train", "--dataset", "mnist5k", "--model", "nice-small", "--max-steps", "6", "--eval-every", "2"]
    assert run(capsys, *argv, "--out", str(full), "--no-progress")[0] == 0

    ckpt, ckpt_full = (load_checkpoint(r / "checkpoints" / "latest.pt") for r in (resumed, full))
    assert ckpt["step"] == ckpt_full["step"] == 6 and ckpt["config"] == ckpt_full["config"]
    a, b = (load_model(r, "latest")[0].state_dict() for r in (resumed, full))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    evals = [_without_timings(read_metrics(r, "eval")) for r in (resumed, full)]
    assert [e["step"] for e in evals[0]] == [e["step"] for e in evals[1]] == [0, 2, 4, 6]
    # step 4 ended the first part: its record adds the training losses of that run's last steps
    evals[0][2] = {k: v for k, v in evals[0][2].items() if k not in ("train_nll", "loss")}
    assert evals[0] == evals[1]
    # a finished run is left as it is
    code, out, _ = run(capsys, "train", "--resume", str(resumed), "--max-steps", "6", "--no-progress")
    assert code == 0 and "already finished at step 6" in out
    assert load_checkpoint(resumed / "checkpoints" / "latest.pt")["step"] == 6


def test_missing_data_is_one_line(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r")
    )
    assert_one_line_error(code, err)
    assert "mnist not found" in err


def test_malformed_data_is_one_line(capsys, tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c" + b"\x00" * 10
    )
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"junk")
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err)
    assert "truncated or malformed" in err or "not an IDX file" in err


def test_bad_npz_is_one_line(capsys, tmp_path):
    import numpy as np

    np.savez(
        tmp_path / "d.npz", x_train=np.zeros((10, 4, 4), dtype=np.float32), x_test=np.zeros((5, 4, 4), dtype=np.float32)
    )
    code, _, err = run(capsys, "train", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err)
    assert "uint8" in err


def test_corrupt_checkpoint_is_one_line(capsys, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    for command in (["evaluate", str(tmp_path / "bad.pt")], ["sample", str(tmp_path / "bad.pt")]):
        code, _, err = run(capsys, *command)
        assert_one_line_error(code, err)
        assert "corrupt" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "/no/such/run"], "neither a run directory nor a checkpoint"),
        (["train", "--model", "dcgan"], "unknown model"),
        (["train", "--objective", "gan"], "objective (--objective) must be one of"),
        (["train", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["train", "--batch-size", "many"], "argument --batch-size: expected an integer, got 'many'"),
        (["train", "--preset", "imagenet"], "unknown preset"),
        (["train", "--model-option", "widht=3", "--max-steps", "1"], "no option"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_options_are_one_line(capsys, tmp_path, argv, message):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "r")]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err)
    assert message in err


def test_existing_run_directory_and_bad_resume_are_one_line(capsys, trained_run):
    code, _, err = run(capsys, "train", "--dataset", "mnist5k", "--out", str(trained_run), "--max-steps", "1")
    assert_one_line_error(code, err)
    assert "already holds a run" in err
    for flags, got in (
        (["--lr", "0.1"], "lr"),
        (["--critic-lr", "0.1", "--log-every", "3"], "critic_lr, log_every"),
        (["--preset", "mnist-mle"], "--preset"),
    ):
        code, _, err = run(capsys, "train", "--resume", str(trained_run), *flags)
        assert_one_line_error(code, err)
        assert f"only --epochs, --max-steps and --max-minutes may change (got {got})" in err
    assert load_checkpoint(trained_run / "checkpoints" / "latest.pt")["step"] == 4


def test_console_script_runs_without_traceback(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "flowgan", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "train" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flowgan", "evaluate", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command, target",
    [
        (["evaluate", "{run}", "-o"], "checkpoints/latest.pt"),
        (["evaluate", "{run}", "--output"], "checkpoints/new.pt"),
        (["sample", "{run}", "-o"], "config.json"),
        (["sample", "{run}", "-o"], "metrics.jsonl"),
        (["analyze", "jacobian", "{run}", "-n", "2", "--out"], "checkpoints"),
    ],
)
def test_no_command_writes_over_a_file_the_run_owns(capsys, trained_run, command, target):
    """An output onto a run's own files (config.json, metrics.jsonl, checkpoints/, tb/, the lock) is
    refused before any work, and the run's files are unchanged; its eval/ and samples/ are fine."""
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file() and "checkpoints" in p.parts}
    args = [a.format(run=trained_run) for a in command] + [str(trained_run / target)]
    code = main(args)
    err = capsys.readouterr().err
    assert_one_line_error(code, err)
    assert "would overwrite" in err and target.split("/")[0] in err
    assert before == {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file() and "checkpoints" in p.parts}
    assert main(["sample", str(trained_run), "-n", "4", "-o", str(trained_run / "samples" / "mine.png")]) == 0


def test_sigterm_stops_any_command_with_one_line_and_exit_130(monkeypatch, capsys, trained_run):
    """Not only training: a SIGTERM during any command is reported as SIGINT is (one line, 130),
    and the handler the command found is put back."""
    import os
    import signal

    import flowgan.cli as cli

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "_check_outputs", lambda args: os.kill(os.getpid(), signal.SIGTERM))
    code = main(["sample", str(trained_run), "-n", "4"])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, expected_code=130)
    assert "flowgan sample: interrupted (SIGTERM)" in err
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("value", ["-1", str(2**63), "1e3"])
def test_a_bad_seed_is_refused_by_its_flag_before_any_work(capsys, trained_run, value):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(trained_run), "--seed", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --seed" in err and value in err


def test_resuming_a_staging_directory_names_the_run_it_was_to_become(capsys, tmp_path):
    staging = tmp_path / ".myrun.creating-1234"
    staging.mkdir()
    (staging / "config.json").write_text("{}")
    code = main(["train", "--resume", str(staging)])
    err = capsys.readouterr().err
    assert_one_line_error(code, err)
    assert f"--out {tmp_path / 'myrun'}" in err and "staging directory" in err


def test_every_line_training_writes_is_well_formed(trained_run):
    """The reader's notion of a well-formed record covers everything the writer writes."""
    from flowgan.rundir import read_records

    records, skipped = read_records(trained_run / "metrics.jsonl")
    assert skipped == 0 and {r["kind"] for _, r in records} >= {"train", "eval"}
