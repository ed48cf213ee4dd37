"""MLE training on real data: it learns, it resumes exactly, it keeps its run directory sound."""

import json
import os
import signal
import time

import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.errors import CheckpointError, FlowganError, Interrupted
from flowgan.rundir import read_metrics
from flowgan.runtime import BatchStream
from flowgan.training import Trainer
from flowgan.training.schedule import learning_rate


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _cfg(**kw):
    base = dict(
        dataset="mnist5k",
        model="nice-small",
        batch_size=100,
        epochs=1.0,
        eval_every=10,
        train_eval_samples=200,
        log_every=5,
    )
    return TrainConfig(**{**base, **kw})


def _final_state(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")


def _assert_same_state(a, b):
    for key in ("model", "critic"):
        if a[key] is None:
            assert b[key] is None
            continue
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    assert a["step"] == b["step"] and a["stream"] == b["stream"]
    assert torch.equal(a["rng"], b["rng"])


def test_two_epochs_of_mle_on_mnist5k_lower_validation_nll(tmp_path, mnist5k):
    # two epochs: the normalised coupling nets start slower than unnormalised ones (5.8 bits/dim
    # after one epoch, 4.2 after two; they are ahead after ~30 epochs, see docs/design.md)
    summary = Trainer(_cfg(epochs=2.0), tmp_path / "run", data=mnist5k, progress=False).fit()
    evals = read_metrics(tmp_path / "run", "eval")
    assert evals[0]["step"] == 0 and evals[-1]["step"] == summary["step"] == 80
    assert evals[-1]["val_nll_nats"] < evals[0]["val_nll_nats"] - 1000  # from the uniform density (0 nats)
    assert evals[-1]["val_nll_bpd"] < 4.5
    assert summary["best"]["val_nll_nats"]["step"] == 80
    for rec in evals:
        assert {"step", "time", "val_nll_nats", "val_nll_bpd", "train_nll_nats", "train_nll_bpd"} <= set(rec)
    assert (tmp_path / "run" / "samples" / "step_0000080.png").is_file()
    assert (tmp_path / "run" / "checkpoints" / "best_nll.pt").is_file()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["model"] == "nice-small" and config["dataset"]["train"] == 4000


@pytest.mark.parametrize(
    "cfg",
    [
        dict(dataset="mnist5k", model="nice-small", epochs=0.5),
        # batch norm inside the s/t nets: running statistics must resume too
        dict(dataset="digits", model="realnvp-small", batch_size=64, epochs=1.0, model_options={"channels": 8}),
        # actnorm's data-dependent initialisation happens once and is restored, not redone
        dict(dataset="digits", model="glow-small", batch_size=64, epochs=1.0, model_options={"steps": 2, "hidden": 8}),
        dict(
            dataset="digits",
            model="glow-small",
            objective="wgan-gp",
            lam=0.5,
            n_critic=2,
            batch_size=64,
            epochs=3.0,  # 3 batches per generator update
            model_options={"steps": 2, "hidden": 8},
        ),
    ],
    ids=["nice", "realnvp-batchnorm", "glow", "glow-hybrid"],
)
def test_stopped_and_resumed_run_equals_uninterrupted(tmp_path, cfg, mnist5k, digits):
    data = mnist5k if cfg["dataset"] == "mnist5k" else digits
    full = Trainer(_cfg(eval_every=7, **cfg), tmp_path / "full", data=data, progress=False)
    full.fit()
    Trainer(_cfg(eval_every=7, max_steps=9, **cfg), tmp_path / "part", data=data, progress=False).fit()
    assert _final_state(tmp_path / "part")["step"] == 9
    resumed = Trainer(
        _cfg(eval_every=7, max_steps=None, **cfg), tmp_path / "part", resume=True, data=data, progress=False
    )
    resumed.fit()
    _assert_same_state(_final_state(tmp_path / "full"), _final_state(tmp_path / "part"))

    # the resumed run's log equals the uninterrupted one's, apart from timings and the extra
    # evaluation that ended the first part at step 9
    def strip(recs):
        return [{k: v for k, v in r.items() if k not in ("time", "steps_per_s", "images_per_s")} for r in recs]

    part = [r for r in read_metrics(tmp_path / "part", "eval") if r["step"] != 9]
    assert strip(read_metrics(tmp_path / "full", "eval")) == strip(part)


def test_signal_interrupt_saves_state_and_resumes_exactly(tmp_path, mnist5k):
    Trainer(_cfg(epochs=0.5), tmp_path / "full", data=mnist5k, progress=False).fit()

    def kill_at_step_6(state, modules):  # a real SIGTERM to this process, as a scheduler would send it
        if state.step == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="step 6"):
        Trainer(_cfg(epochs=0.5), tmp_path / "killed", data=mnist5k, progress=False, callbacks=(kill_at_step_6,)).fit()
    assert signal.getsignal(signal.SIGTERM) is before  # fit() puts the previous handler back
    assert _final_state(tmp_path / "killed")["step"] == 6
    Trainer(None, tmp_path / "killed", resume=True, data=mnist5k, progress=False).fit()
    _assert_same_state(_final_state(tmp_path / "full"), _final_state(tmp_path / "killed"))
    events = read_metrics(tmp_path / "killed", "event")
    assert (
        events and events[0]["event"] == "interrupted" and events[0]["signal"] == "SIGTERM" and events[0]["step"] == 6
    )


def test_resume_truncates_log_lines_written_after_the_checkpoint(tmp_path, mnist5k):
    Trainer(_cfg(max_steps=10), tmp_path / "run", data=mnist5k, progress=False).fit()
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 13, "loss": 1.0}) + "\n")
        f.write('{"kind": "train", "st')  # a line cut by a kill
    with pytest.warns(RuntimeWarning, match="skipped 1 malformed"):  # the cut line, said and dropped
        Trainer(_cfg(max_steps=20), tmp_path / "run", resume=True, data=mnist5k, progress=False).fit()
    steps = [r["step"] for r in read_metrics(tmp_path / "run", "train")]
    assert steps == sorted(steps) and steps.count(15) == 1


def test_a_run_directory_is_never_overwritten(tmp_path, mnist5k):
    Trainer(_cfg(max_steps=2), tmp_path / "run", data=mnist5k, progress=False).fit()
    with pytest.raises(FlowganError, match="already holds a run"):
        Trainer(_cfg(max_steps=2), tmp_path / "run", data=mnist5k, progress=False).fit()


def test_corrupt_checkpoint_is_reported(tmp_path, mnist5k):
    Trainer(_cfg(max_steps=2), tmp_path / "run", data=mnist5k, progress=False).fit()
    (tmp_path / "run" / "checkpoints" / "latest.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(None, tmp_path / "run", resume=True, data=mnist5k, progress=False)


def test_batch_stream_covers_each_epoch_once_and_is_reproducible():
    s = BatchStream(10, 3, seed=4)
    epoch0 = torch.cat([s.next() for _ in range(3)])
    assert len(set(epoch0.tolist())) == 9 and s.epoch == 1 and s.batch == 0
    t = BatchStream(10, 3, seed=4)
    t.load_state_dict({"epoch": 1, "batch": 1})
    s.next()
    assert torch.equal(s.next(), t.next())


def test_learning_rate_schedule_decays_per_step(mnist5k, tmp_path):
    cfg = _cfg(lr=1e-3, lr_decay=0.5, min_lr=1e-4)
    assert learning_rate(cfg, 2, 1.0) == pytest.approx(2.5e-4)
    assert learning_rate(cfg, 10, 1.0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 10, 0.5) == pytest.approx(0.5e-4)  # a rollback halves even the floor
    # the rate the run used, as logged: lr * 0.5**step at each log line (log_every 5)
    Trainer(cfg.replace(max_steps=5, min_lr=0.0), tmp_path / "r", data=mnist5k, progress=False).fit()
    assert read_metrics(tmp_path / "r", "train")[0]["lr"] == pytest.approx(1e-3 * 0.5**5)


def test_time_limit_ends_the_run_with_a_final_evaluation(tmp_path, mnist5k):
    def slow(state, modules):
        if state.step == 4:
            time.sleep(3.0)  # step 4 takes long

    summary = Trainer(
        _cfg(time_limit=2.5, eval_every=100), tmp_path / "run", data=mnist5k, progress=False, callbacks=(slow,)
    ).fit()
    assert summary["stopped_by"] == "time_limit" and summary["step"] == 4
    assert read_metrics(tmp_path / "run", "eval")[-1]["step"] == 4


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path, mnist5k):
    """torch.compile (inductor, CPU) gives the same parameters as eager after a few updates."""
    states = []
    for compile in (False, True):
        trainer = Trainer(_cfg(max_steps=5, compile=compile), tmp_path / f"c{compile}", data=mnist5k, progress=False)
        trainer.fit()
        states.append(trainer.modules.model.state_dict())
    for k in states[0]:
        assert torch.allclose(states[0][k], states[1][k], rtol=1e-4, atol=1e-5), k


def test_bf16_autocast_follows_fp32_and_evaluates_in_float32(tmp_path, mnist5k):
    finals = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(_cfg(max_steps=30, precision=precision), tmp_path / precision, data=mnist5k, progress=False)
        trainer.fit()
        assert all(p.dtype == torch.float32 for p in trainer.modules.model.parameters())
        finals[precision] = read_metrics(tmp_path / precision, "eval")[-1]["val_nll_nats"]
    assert finals["fp32"] < -200  # it learned
    assert abs(finals["bf16"] - finals["fp32"]) <= 0.05 * abs(finals["fp32"])


@pytest.mark.parametrize("units", [True, False])
def test_precision_auto_records_what_it_resolved_to(tmp_path, digits, monkeypatch, units):
    """``--precision auto``: bf16 where the CPU has bf16 units (detected from /proc/cpuinfo,
    :func:`flowgan.runtime.cpu_has_fast_bf16`), fp32 elsewhere; config.json and the checkpoint say
    which ran, and a resume keeps it."""
    import flowgan.runtime

    monkeypatch.setattr(flowgan.runtime, "cpu_has_fast_bf16", lambda: units)
    cfg = TrainConfig(dataset="digits", model="nice-small", batch_size=50, max_steps=2, eval_every=2, precision="auto")
    trainer = Trainer(cfg, tmp_path / "run", data=digits, progress=False)
    expected = "bf16" if units else "fp32"
    assert trainer.ctx.config.precision == expected
    trainer.fit()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["precision"] == expected
    assert _final_state(tmp_path / "run")["config"]["precision"] == expected
    monkeypatch.setattr(flowgan.runtime, "cpu_has_fast_bf16", lambda: not units)  # another machine
    resumed = Trainer.resume(tmp_path / "run", max_steps=3, data=digits, progress=False)
    assert resumed.ctx.config.precision == expected


def test_sigint_to_a_training_process_stops_it_with_a_checkpoint_to_resume(tmp_path):
    """``flowgan train`` in a child process, SIGINT once its run directory exists: exit 130, the
    state of the step it stopped at in latest.pt, an ``interrupted`` event, and a resume goes on."""
    import subprocess
    import sys
    from pathlib import Path

    import flowgan

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(flowgan.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    train = [
        sys.executable,
        "-m",
        "flowgan",
        "train",
        "--dataset",
        "mnist5k",
        "--model",
        "nice-small",
        "--batch-size",
        "32",
        "--no-progress",
    ]
    child = subprocess.Popen(
        [*train, "--max-steps", "100000", "--eval-every", "100000", "--eval-samples", "50", "--out", str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "metrics.jsonl").is_file():  # published after the evaluation of step 0: training has begun
            assert time.monotonic() < deadline and child.poll() is None, "the run never started"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=300)
    err = child.stderr.read()
    assert code == 130, err
    event = read_metrics(run_dir, "event")[-1]
    assert event["event"] == "interrupted" and event["signal"] == "SIGINT"
    assert f"interrupted by SIGINT at step {event['step']}" in err and f"--resume {run_dir}" in err
    assert _final_state(run_dir)["step"] == event["step"]
    resumed = subprocess.run(
        [sys.executable, "-m", "flowgan", "train", "--resume", str(run_dir), "--max-steps", str(event["step"] + 2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _final_state(run_dir)["step"] == event["step"] + 2


@pytest.mark.parametrize("damage", ["edited", "deleted", "garbage", "none"])
def test_config_json_follows_the_checkpoint_on_resume(tmp_path, mnist5k, damage):
    """The checkpoint's configuration is the one truth: resume, evaluate and report use it, and a
    resume rewrites config.json from it, saying so when the file was missing or disagreed."""
    import warnings

    from flowgan.checkpoint import read_run_config

    run = tmp_path / "run"
    Trainer(_cfg(max_steps=4, eval_every=4, lr=1e-3), run, data=mnist5k, progress=False).fit()
    path = run / "config.json"
    if damage == "edited":
        info = json.loads(path.read_text())
        info["config"]["lr"], info["config"]["model"] = 0.5, "nice-mnist"
        path.write_text(json.dumps(info))
        assert read_run_config(run).lr == 1e-3 and read_run_config(run).model == "nice-small"
    elif damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_text("[1, 2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(_cfg(max_steps=6, eval_every=4), run, resume=True, data=mnist5k, progress=False).fit()
    said = [str(w.message) for w in caught if "config.json" in str(w.message)]
    if damage == "none":
        assert said == []  # a resume that changes only --max-steps agrees with the checkpoint
    else:
        assert len(said) == 1 and "rewritten from the checkpoint" in said[0]
        assert damage != "edited" or "lr, model" in said[0]
    written = json.loads(path.read_text())["config"]
    assert (written["lr"], written["model"], written["max_steps"]) == (1e-3, "nice-small", 6)


def test_glow_initialises_its_actnorms_from_the_first_batch_only(tmp_path, digits):
    from flowgan.flows import ActNorm

    cfg = TrainConfig(
        dataset="digits", model="glow-small", model_options={"steps": 2, "hidden": 8}, batch_size=64, max_steps=2,
        eval_every=2,
    )  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", data=digits, progress=False)
    norms = [m for m in trainer.modules.model.modules() if isinstance(m, ActNorm)]
    assert norms and not any(bool(m.initialized) for m in norms)
    trainer.fit()
    assert all(bool(m.initialized) for m in norms)
    state = _final_state(tmp_path / "run")["model"]
    assert all(bool(v) for k, v in state.items() if k.endswith("initialized"))
