"""Faults and bad input (issue 13): rollbacks that end, safe data files, locked and atomically
created run directories, and one clear line (exit 2) for every user's mistake or environment."""

import errno
import json
import os
import pickle
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.cli import main
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.errors import DataError, FlowganError, Interrupted, NonFiniteError
from flowgan.rundir import RunLock, read_metrics
from flowgan.training import Trainer
from flowgan.training.nonfinite import MAX_ROLLBACKS


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def _cfg(**kw):
    base = dict(
        dataset="mnist5k",
        model="nice-small",
        batch_size=100,
        max_steps=6,
        eval_every=3,
        train_eval_samples=100,
        eval_samples=100,
        log_every=2,
    )
    return TrainConfig(**{**base, **kw})


def run_cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code, err, expected=2):
    info = ("flowgan: training ", "flowgan: resuming ")  # what a run prints when it starts
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and not line.startswith(info)]
    assert code == expected, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- 1: rollback


def _poison_every_step(limit=200):
    calls = []

    def callback(state, modules):
        calls.append(state.step)
        if len(calls) > limit:  # the old trainer rolled back forever: fail instead of hanging
            raise AssertionError("rollback never ended")
        with torch.no_grad():
            next(modules.model.parameters()).fill_(float("nan"))

    return callback


def test_rollbacks_are_bounded_and_halve_the_rate_each_time(tmp_path, mnist5k):
    trainer = Trainer(
        _cfg(on_nonfinite="rollback"),
        tmp_path / "run",
        data=mnist5k,
        progress=False,
        callbacks=(_poison_every_step(),),
    )
    with pytest.raises(NonFiniteError, match=f"after {MAX_ROLLBACKS} rollbacks"):
        trainer.fit()
    events = [e for e in read_metrics(tmp_path / "run", "event") if e["event"] == "rollback"]
    assert len(events) == MAX_ROLLBACKS
    assert [e["lr_scale"] for e in events] == [0.5**k for k in range(1, MAX_ROLLBACKS + 1)]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 0 and ckpt["rollbacks"] == MAX_ROLLBACKS  # the run is intact, the count kept
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_rollback_count_survives_a_resume(tmp_path, mnist5k):
    cfg = _cfg(on_nonfinite="rollback")
    first = Trainer(cfg, tmp_path / "run", data=mnist5k, progress=False, callbacks=(_poison_every_step(limit=3),))
    with pytest.raises(AssertionError):
        first.fit()  # three rollbacks, then the process "dies"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["rollbacks"] == 3
    resumed = Trainer(
        None, tmp_path / "run", resume=True, data=mnist5k, progress=False, callbacks=(_poison_every_step(),)
    )
    assert resumed.state.lr_scale == 0.5**3 and resumed.state.rollbacks == 3
    with pytest.raises(NonFiniteError, match=f"after {MAX_ROLLBACKS} rollbacks"):
        resumed.fit()
    assert len([e for e in read_metrics(tmp_path / "run", "event") if e["event"] == "rollback"]) == MAX_ROLLBACKS


def test_a_signal_stops_a_run_that_keeps_rolling_back(tmp_path, mnist5k):
    """Every update fails (no step ever succeeds); SIGTERM arrives with the first failure, so the
    run learns of it only after the rollback that failure causes: it must stop there, saved."""
    trainer = Trainer(_cfg(on_nonfinite="rollback"), tmp_path / "run", data=mnist5k, progress=False)
    objective, calls = trainer.modules.objective, []
    original_loss = objective.generator_loss

    def nan_loss(*args):
        calls.append(1)
        if len(calls) > 50:
            raise AssertionError("the signal was ignored")
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        loss, logs = original_loss(*args)
        return loss * float("nan"), logs

    objective.generator_loss = nan_loss
    with pytest.raises(Interrupted, match="SIGTERM at step 0"):
        trainer.fit()
    assert len(calls) == 1  # no update was tried after the signal
    assert [e["event"] for e in read_metrics(tmp_path / "run", "event")] == ["rollback", "interrupted"]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 0 and ckpt["rollbacks"] == 1 and ckpt["lr_scale"] == 0.5


# ----------------------------------------------------------------------------- 2: CIFAR-10 pickles


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), the way CIFAR-10's batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj
        )
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    import io

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # as numpy 1 wrote it


def _cifar_dir(root, n=20, batch_bytes=None):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        images[name] = data
        batch = {
            b"batch_label": b"training batch",
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": data,
            b"filenames": [b"x.png"] * n,
        }
        (base / name).write_bytes(batch_bytes or _py2_pickle(batch))
    return images


def test_cifar10_batches_in_the_python2_format_load(tmp_path):
    images = _cifar_dir(tmp_path, n=1002)  # CIFAR-10 holds out 5,000 for validation: 10 left to train on
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert (len(ds.train), len(ds.val)) == (10, 5000) and ds.shape == (3, 32, 32)
    assert torch.equal(ds.test.images, torch.from_numpy(images["test_batch"].reshape(-1, 3, 32, 32)))
    together = torch.cat([ds.train.images, ds.val.images]).reshape(-1, 3072)
    expected = np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)])
    assert sorted(map(bytes, together.numpy())) == sorted(map(bytes, expected))


def test_a_cifar10_folder_too_small_for_its_validation_split_is_refused(tmp_path):
    _cifar_dir(tmp_path)  # 5 x 20 training images: all of them held out, none left to train on
    with pytest.raises(DataError, match="cifar10: the train split has no images"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_crafted_cifar10_batch_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _cifar_dir(tmp_path / "bad", batch_bytes=pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        tmp_path / "bad",
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    line = assert_one_line(code, err)
    assert "refused to load" in line and "system" in line
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_cifar10_batch_of_python_objects_is_refused(tmp_path):
    batch = {"data": np.array([[1]], dtype=object), "labels": [0]}
    _cifar_dir(tmp_path, batch_bytes=pickle.dumps(batch, protocol=2))
    with pytest.raises(FlowganError, match="objects are not allowed"):
        load_dataset("cifar10", tmp_path, download=False)


# ----------------------------------------------------------------------------- 3: evaluate


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist5k):
    run_dir = tmp_path_factory.mktemp("rel") / "run"
    Trainer(_cfg(max_steps=2, eval_every=2), run_dir, data=mnist5k, progress=False).fit()
    return run_dir


@pytest.mark.parametrize("flag", ["--batch-size", "--draws", "--samples"])
@pytest.mark.parametrize("value", ["-1", "0"])
def test_evaluate_refuses_a_non_positive_count(capsys, small_run, tmp_path, flag, value):
    code, out, err = run_cli(capsys, "evaluate", small_run, flag, value, "-o", tmp_path / "e.json")
    assert flag in assert_one_line(code, err) and out == "" and not (tmp_path / "e.json").exists()


def test_nll_refuses_a_non_positive_batch_size(mnist5k):
    from flowgan.likelihood import nll
    from flowgan.models import build_model

    with pytest.raises(ValueError, match="batch size"):
        nll(build_model("nice-small"), mnist5k.test.images[:10], batch_size=-1)


# ----------------------------------------------------------------------------- 7: bad values


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lam", "nan"], "--lam"),
        (["--lam", "-1"], "--lam"),
        (["--lr", "nan"], "--lr"),
        (["--lr-decay", "-1"], "--lr-decay"),
        (["--lr-decay", "nan"], "--lr-decay"),
        (["--max-minutes", "-1"], "max-minutes"),
        (["--max-minutes", "nan"], "max-minutes"),
        (["--eval-samples", "0"], "--eval-samples"),
        (["--eval-samples", "-5"], "--eval-samples"),
        (["--epochs", "nan"], "epochs"),
        (["--epochs", "inf"], "epochs"),
        (["--beta1", "1.5"], "beta1"),
        (["--scores", "bogus"], "unknown score"),
        (["--seed", "-1"], "seed"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_written(capsys, tmp_path, argv, message):
    code, _, err = run_cli(
        capsys, "train", "--dataset", "digits", "--max-steps", "1", "--out", tmp_path / "run", "--no-progress", *argv
    )
    assert message in assert_one_line(code, err)
    assert not (tmp_path / "run").exists()


def test_the_config_knows_every_score():
    from flowgan.config import SCORE_METRICS
    from flowgan.metrics.registry import SCORES

    assert tuple(SCORE_METRICS) == tuple(SCORES)


# ----------------------------------------------------------------------------- 4, 5, 8: run directories

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

_DIE_AT_FIRST_EVAL = """
import os, signal, sys
from flowgan import train
from flowgan.config import TrainConfig
def die(*args, **kwargs):  # the score hook of the first evaluation (step 0): killed, no clean-up runs
    os.kill(os.getpid(), signal.SIGKILL)
cfg = TrainConfig(dataset="digits", model="nice-small", max_steps=2, eval_every=2, score_metrics=("mode",))
train(cfg, sys.argv[1], progress=False, score_fn=die)
"""


def _train_args(run_dir, *extra):
    return [
        "train",
        "--dataset",
        "digits",
        "--max-steps",
        "2",
        "--eval-every",
        "2",
        "--no-progress",
        "--out",
        run_dir,
        *extra,
    ]


def test_a_start_killed_before_its_first_checkpoint_leaves_a_restartable_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": _SRC, "OMP_NUM_THREADS": "1"}
    died = subprocess.Popen(
        [sys.executable, "-c", _DIE_AT_FIRST_EVAL, str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = died.communicate(timeout=300)
    assert died.returncode == -signal.SIGKILL, stderr.decode()  # killed in the hook, not an error of its own
    # nothing under the run's name: only the dead start's own staging directory, with its config.json and no checkpoint
    staging = tmp_path / f".run.creating-{died.pid}"
    assert list(tmp_path.iterdir()) == [staging]
    assert json.loads((staging / "config.json").read_text())["config"]["score_metrics"] == ["mode"]
    assert not (staging / "checkpoints" / "latest.pt").exists()
    # a resume names the interrupted start and the command that restarts it, and changes nothing
    code, _, err = run_cli(capsys, "train", "--resume", run_dir)
    line = assert_one_line(code, err)
    assert "its start was interrupted before the first checkpoint" in line
    assert f"start it with flowgan train ... --out {run_dir}" in line
    assert list(tmp_path.iterdir()) == [staging]
    # the same command as a fresh start replaces the dead start and trains the whole run from step 0
    code, _, err = run_cli(capsys, *_train_args(run_dir))
    assert code == 0, err
    assert list(tmp_path.iterdir()) == [run_dir]  # the dead start's staging directory is gone
    assert (run_dir / "config.json").is_file() and not (run_dir / ".lock").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"] == 2
    assert [r["step"] for r in read_metrics(run_dir, "eval")] == [0, 2]


def test_an_error_before_the_first_checkpoint_leaves_nothing(tmp_path, capsys, monkeypatch):
    import flowgan.checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(flowgan.checkpoint.torch, "save", full)
    code, _, err = run_cli(capsys, *_train_args(tmp_path / "run"))
    line = assert_one_line(code, err)
    assert "No space left on device" in line and str(tmp_path / "run" / "checkpoints" / "latest.pt") in line
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    code, _, err = run_cli(capsys, *_train_args(tmp_path / "run"))
    assert code == 0, err


def test_the_remains_of_an_old_failed_start_are_replaced(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "metrics.jsonl").write_text('{"kind": "eval", "step": 0}\n')
    code, _, err = run_cli(capsys, "train", "--resume", run_dir)
    assert "start it again" in assert_one_line(code, err)
    code, _, err = run_cli(capsys, *_train_args(run_dir))
    assert code == 0, err
    assert [r["step"] for r in read_metrics(run_dir, "eval")] == [0, 2]


def test_a_directory_with_other_files_or_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    (tmp_path / "afile").write_text("x")
    for target, message in (("mine", "not empty"), ("afile", "not a directory")):
        code, _, err = run_cli(capsys, *_train_args(tmp_path / target))
        assert message in assert_one_line(code, err)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "x" and (tmp_path / "afile").read_text() == "x"


def test_a_locked_run_directory_is_refused_naming_the_holder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(capsys, *_train_args(run_dir))[0] == 0
    before = (run_dir / "metrics.jsonl").read_text()
    lock = RunLock(run_dir).acquire()
    try:
        code, _, err = run_cli(capsys, "train", "--resume", run_dir, "--max-steps", "4")
        assert f"in use by pid {os.getpid()}" in assert_one_line(code, err)
        code, _, err = run_cli(capsys, *_train_args(run_dir))
        assert code == 2
    finally:
        lock.release()
    assert (run_dir / "metrics.jsonl").read_text() == before
    (run_dir / ".lock").write_text("pid 999999999 on elsewhere\n")  # a stale lock: its holder died
    code, _, err = run_cli(capsys, "train", "--resume", run_dir, "--max-steps", "4")
    assert code == 0, err
    assert not (run_dir / ".lock").exists()
    steps = [r["step"] for r in read_metrics(run_dir) if r["kind"] != "event"]
    assert len(steps) == len(set((r["kind"], r["step"]) for r in read_metrics(run_dir) if r["kind"] != "event"))


def test_a_second_resume_while_one_runs_is_refused(tmp_path, capsys):
    import time

    run_dir = tmp_path / "run"
    assert run_cli(capsys, *_train_args(run_dir))[0] == 0
    env = {**os.environ, "PYTHONPATH": _SRC, "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        "-m",
        "flowgan",
        "train",
        "--resume",
        str(run_dir),
        "--max-steps",
        "100000",
        "--no-progress",
    ]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while f"pid {first.pid} " not in ((run_dir / ".lock").read_text() if (run_dir / ".lock").exists() else ""):
            assert time.monotonic() < deadline and first.poll() is None, "the first resume never took the lock"
            time.sleep(0.05)
        code, _, err = run_cli(capsys, "train", "--resume", run_dir, "--max-steps", "100000")
        assert f"in use by pid {first.pid} on" in assert_one_line(code, err)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 130, first.stderr.read()
    records = [(r["kind"], r["step"]) for r in read_metrics(run_dir) if r["kind"] != "event"]
    assert len(records) == len(set(records))  # no record logged twice
    assert not (run_dir / ".lock").exists()


def test_resuming_a_finished_run_is_a_no_op(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(capsys, *_train_args(run_dir))[0] == 0
    before = (run_dir / "metrics.jsonl").read_text()
    code, out, err = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 0 and "already finished at step 2" in out
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_a_resume_removes_temporary_files_of_a_killed_writer(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(capsys, *_train_args(run_dir))[0] == 0
    orphans = [
        run_dir / "checkpoints" / ".latest.pt.tmp4242",  # older flowgan's name
        run_dir / "checkpoints" / ".latest.pt.tmp4242.pt",
        run_dir / ".config.json.tmp4242.json",
        run_dir / ".metrics.jsonl.tmp",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    assert run_cli(capsys, "train", "--resume", run_dir, "--max-steps", "3")[0] == 0
    assert not any(orphan.exists() for orphan in orphans)


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_log_stays_behind_it(tmp_path, capsys, monkeypatch):
    import flowgan.checkpoint

    run_dir = tmp_path / "run"
    real_save, calls = flowgan.checkpoint.torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(obj["step"])
        if obj["step"] == 4:
            f.write(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(flowgan.checkpoint.torch, "save", save)
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--max-steps",
        "6",
        "--eval-every",
        "2",
        "--no-progress",
        "--out",
        run_dir,
    )
    line = assert_one_line(code, err)
    assert "No space left on device" in line and "latest.pt" in line
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"] == 2
    assert max(r["step"] for r in read_metrics(run_dir)) == 2
    assert not list((run_dir / "checkpoints").glob(".*tmp*"))
    monkeypatch.undo()
    assert run_cli(capsys, "train", "--resume", run_dir)[0] == 0
    assert [r["step"] for r in read_metrics(run_dir, "eval")] == [0, 2, 4, 6]


def test_evaluate_on_a_pickle_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    import pickle as _pickle

    (tmp_path / "p.pkl").write_bytes(_pickle.dumps({"x": 1}, protocol=4))
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "p.pkl")
    assert "not a flowgan checkpoint" in assert_one_line(code, err)


# ----------------------------------------------------------------------------- 6: the environment and bad input


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(DIR)``: writes under DIR fail as on a read-only mount (root ignores chmod)."""
    import builtins

    roots = []
    real_open, real_mkdir = builtins.open, os.mkdir

    def under(path):
        try:
            path = os.path.abspath(os.fspath(path))
        except TypeError:
            return False
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and under(file):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    import io

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)  # pathlib's
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    return lambda d: roots.append(os.path.abspath(d))


def test_writes_to_a_read_only_place_are_one_line(capsys, tmp_path, small_run, read_only):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    code, _, err = run_cli(capsys, *_train_args(ro / "run"))
    assert "Read-only file system" in assert_one_line(code, err) and list(ro.iterdir()) == []
    code, _, err = run_cli(capsys, "sample", small_run, "-n", "4", "-o", ro / "s.png")
    assert "Read-only file system" in assert_one_line(code, err)
    code, out, err = run_cli(capsys, "evaluate", small_run, "--split", "val", "-o", ro / "e.json")
    assert "Read-only file system" in assert_one_line(code, err)
    assert "nll_bpd" in json.loads(out)  # the result is printed before the file fails


def test_a_model_option_that_cannot_build_a_model_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, *_train_args(tmp_path / "run", "--model-option", "hidden=-5"))
    assert "hidden=-5" in assert_one_line(code, err) and not (tmp_path / "run").exists()


def test_an_npz_with_two_channels_is_refused(capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.integers(0, 256, (50, 28, 28, 2), dtype=np.uint8),
        x_test=rng.integers(0, 256, (10, 28, 28, 2), dtype=np.uint8),
    )
    code, _, err = run_cli(capsys, "train", "--dataset", tmp_path / "d.npz", "--out", tmp_path / "run", "--no-progress")
    assert "1 or 3 channels" in assert_one_line(code, err)


def test_npz_layouts_are_still_read(tmp_path):
    rng = np.random.default_rng(0)
    for name, shape in (("nhwc", (20, 8, 8, 3)), ("nchw", (20, 3, 8, 8)), ("nhw", (20, 8, 8)), ("gray", (20, 8, 8, 1))):
        np.savez(
            tmp_path / f"{name}.npz",
            x_train=rng.integers(0, 256, shape, dtype=np.uint8),
            x_test=rng.integers(0, 256, shape, dtype=np.uint8),
        )
        expected = (1, 8, 8) if name in ("nhw", "gray") else (3, 8, 8)
        assert load_dataset(str(tmp_path / f"{name}.npz")).shape == expected


@pytest.mark.parametrize("n", ["0", "1000000000"])
def test_sample_refuses_an_unreasonable_count(capsys, small_run, tmp_path, n):
    code, _, err = run_cli(capsys, "sample", small_run, "-n", n, "-o", tmp_path / "s.png")
    assert f"argument -n: must be in [1, 10000], got {n}" in assert_one_line(code, err)


def test_a_resume_reloads_a_checkpoint_written_after_it_was_set_up(tmp_path, mnist5k):
    Trainer(_cfg(max_steps=2), tmp_path / "run", data=mnist5k, progress=False).fit()
    waiting = Trainer(_cfg(max_steps=4), tmp_path / "run", resume=True, data=mnist5k, progress=False)
    Trainer(_cfg(max_steps=4), tmp_path / "run", resume=True, data=mnist5k, progress=False).fit()
    summary = waiting.fit()  # it took the lock after the other one finished: nothing left to do
    assert summary["step"] == 4 and summary["stopped_by"] == "finished"
    assert [r["step"] for r in read_metrics(tmp_path / "run", "eval")] == [0, 2, 3, 4]  # eval_every 3, and the end
