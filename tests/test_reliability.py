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
    lines = [l for l in err.splitlines() if l.strip() and "%|" not in l]
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
