"""Faults and bad input (issue 13): rollbacks that end, safe data files, locked and atomically
created run directories, and one clear line (exit 2) for every user's mistake or environment."""

import errno
import json
import math
import os
import signal

import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.cli import main
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.errors import FlowganError, NonFiniteError
from flowgan.training import MAX_ROLLBACKS, Interrupted, Trainer, read_metrics


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def _cfg(**kw):
    base = dict(dataset="mnist5k", model="nice-small", batch_size=100, max_steps=6, eval_every=3, train_eval_samples=100, eval_samples=100, log_every=2)
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
    lines = [l for l in err.splitlines() if l.strip() and "%|" not in l and not l.startswith(info)]
    assert code == expected, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- 1: rollback


def _poison_every_step(limit=200):
    calls = []

    def callback(trainer):
        calls.append(trainer.step)
        if len(calls) > limit:  # the old trainer rolled back forever: fail instead of hanging
            raise AssertionError("rollback never ended")
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))

    return callback


def test_rollbacks_are_bounded_and_halve_the_rate_each_time(tmp_path, mnist5k):
    trainer = Trainer(_cfg(on_nonfinite="rollback"), tmp_path / "run", dataset=mnist5k, progress=False, callbacks=(_poison_every_step(),))
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
    first = Trainer(cfg, tmp_path / "run", dataset=mnist5k, progress=False, callbacks=(_poison_every_step(limit=3),))
    with pytest.raises(AssertionError):
        first.fit()  # three rollbacks, then the process "dies"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["rollbacks"] == 3
    resumed = Trainer(None, tmp_path / "run", resume=True, dataset=mnist5k, progress=False, callbacks=(_poison_every_step(),))
    assert resumed.lr_scale == 0.5**3
    with pytest.raises(NonFiniteError, match=f"after {MAX_ROLLBACKS} rollbacks"):
        resumed.fit()
    assert len([e for e in read_metrics(tmp_path / "run", "event") if e["event"] == "rollback"]) == MAX_ROLLBACKS


def test_a_signal_stops_a_run_that_keeps_rolling_back(tmp_path, mnist5k):
    """Every update fails (no step ever succeeds); SIGTERM arrives during the first rollback."""
    trainer = Trainer(_cfg(on_nonfinite="rollback"), tmp_path / "run", dataset=mnist5k, progress=False)
    original_loss, original_restore, calls = trainer.objective.generator_loss, trainer._restore, []

    def nan_loss(*args):
        calls.append(1)
        if len(calls) > 50:
            raise AssertionError("the signal was ignored")
        loss, logs = original_loss(*args)
        return loss * float("nan"), logs

    def restore_and_signal(ckpt):
        original_restore(ckpt)
        os.kill(os.getpid(), signal.SIGTERM)

    trainer.objective.generator_loss = nan_loss
    trainer._restore = restore_and_signal
    with pytest.raises(Interrupted):
        trainer.fit()
    assert [e["event"] for e in read_metrics(tmp_path / "run", "event")] == ["rollback", "interrupted"]


# ----------------------------------------------------------------------------- 2: CIFAR-10 pickles

import pickle
import struct

import numpy as np


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), the way CIFAR-10's batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj)
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
        batch = {b"batch_label": b"training batch", b"labels": [int(v) for v in rng.integers(0, 10, n)], b"data": data, b"filenames": [b"x.png"] * n}
        (base / name).write_bytes(batch_bytes or _py2_pickle(batch))
    return images


def test_cifar10_batches_in_the_python2_format_load(tmp_path):
    images = _cifar_dir(tmp_path)
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert len(ds.train) + len(ds.val) == 100 and ds.shape == (3, 32, 32)
    assert torch.equal(ds.test.images, torch.from_numpy(images["test_batch"].reshape(-1, 3, 32, 32)))


def test_a_crafted_cifar10_batch_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _cifar_dir(tmp_path / "bad", batch_bytes=pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    code, _, err = run_cli(capsys, "train", "--dataset", "cifar10", "--data-dir", tmp_path / "bad", "--out", tmp_path / "run", "--no-progress")
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
    Trainer(_cfg(max_steps=2, eval_every=2), run_dir, dataset=mnist5k, progress=False).fit()
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
        (["--lam", "nan"], "lambda"),
        (["--lam", "-1"], "lambda"),
        (["--lr", "nan"], "learning rate"),
        (["--lr-decay", "-1"], "lr_decay"),
        (["--lr-decay", "nan"], "lr_decay"),
        (["--max-minutes", "-1"], "max-minutes"),
        (["--max-minutes", "nan"], "max-minutes"),
        (["--eval-samples", "0"], "eval_samples"),
        (["--eval-samples", "-5"], "eval_samples"),
        (["--epochs", "nan"], "epochs"),
        (["--epochs", "inf"], "epochs"),
        (["--beta1", "1.5"], "beta1"),
        (["--scores", "bogus"], "unknown score"),
        (["--seed", "-1"], "seed"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_written(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--max-steps", "1", "--out", tmp_path / "run", "--no-progress", *argv)
    assert message in assert_one_line(code, err)
    assert not (tmp_path / "run").exists()


def test_the_config_knows_every_score():
    from flowgan.config import SCORE_METRICS
    from flowgan.metrics.evaluate import SCORES

    assert tuple(SCORE_METRICS) == tuple(SCORES)


def test_evaluate_on_a_pickle_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    import pickle as _pickle

    (tmp_path / "p.pkl").write_bytes(_pickle.dumps({"x": 1}, protocol=4))
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "p.pkl")
    assert "not a flowgan checkpoint" in assert_one_line(code, err)
