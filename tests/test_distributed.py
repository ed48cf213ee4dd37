"""Data parallelism with torchrun on 2 CPU processes (gloo): same global batch, same parameters.

The NICE of these runs normalises inside its coupling networks; ``--sync-batchnorm`` makes two
processes take the statistics of the global batch, so that they compute what one process would
(by default each normalises with its own half batch, which is a different computation).
"""

import os
import subprocess
import sys

import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.cli import main

ARGS = [
    "--dataset",
    "mnist5k",
    "--model",
    "nice-small",
    "--objective",
    "wgan-gp",
    "--lam",
    "0.1",
    "--n-critic",
    "2",
    "--batch-size",
    "50",
    "--eval-every",
    "2",
    "--eval-samples",
    "200",
    "--no-progress",
    "--sync-batchnorm",
]


def torchrun(nproc, *argv):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "flowgan",
        *argv,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _flat(state):
    return torch.cat([v.double().flatten() for v in state.values() if v.is_floating_point()])


def _relative_diff(a, b, start):
    """‖θ_a − θ_b‖ / ‖θ_a − θ_0‖: the disagreement as a fraction of how far training moved.

    Not an elementwise max: Adam divides each coordinate by its own gradient scale, so a
    coordinate whose gradient is at rounding level (summing a batch in two halves changes the
    last bits) moves by ±lr in either run, and one such coordinate already gives an elementwise
    difference of ~lr/2 after one step (measured: 1 of 214,209 critic weights). A real error in
    sharding or gradient averaging disagrees by O(1) of the update; rounding measures ~1e-3.
    """
    a, b, start = _flat(a), _flat(b), _flat(start)
    return ((a - b).norm() / (a - start).norm()).item()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    assert main(["train", *ARGS, "--max-steps", "0", "--out", str(root / "start")]) == 0
    assert main(["train", *ARGS, "--max-steps", "4", "--out", str(root / "single")]) == 0
    return {name: load_checkpoint(root / name / "checkpoints" / "latest.pt") for name in ("start", "single")}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """4 steps on 2 processes with --sync-batchnorm."""
    out = tmp_path_factory.mktemp("ddp-two") / "two"
    torchrun(2, "train", *ARGS, "--max-steps", "4", "--out", str(out))
    return load_checkpoint(out / "checkpoints" / "latest.pt")


def test_two_processes_match_one(runs, two):
    single = runs["single"]
    assert two["step"] == single["step"] == 4
    assert _relative_diff(single["model"], two["model"], runs["start"]["model"]) < 1e-2
    assert _relative_diff(single["critic"], two["critic"], runs["start"]["critic"]) < 1e-2
    # sharded evaluation gives the same validation NLL
    assert two["best"]["val_nll_nats"]["value"] == pytest.approx(single["best"]["val_nll_nats"]["value"], abs=1e-3)


def test_resume_with_a_different_number_of_processes(tmp_path, runs):
    single = runs["single"]
    torchrun(2, "train", *ARGS, "--max-steps", "2", "--out", str(tmp_path / "run"))
    assert main(["train", "--resume", str(tmp_path / "run"), "--max-steps", "4", "--no-progress"]) == 0
    resumed = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert resumed["step"] == 4
    assert _relative_diff(single["model"], resumed["model"], runs["start"]["model"]) < 1e-2


def test_per_shard_batch_norm_is_a_different_computation(tmp_path, runs, two):
    """Without --sync-batchnorm each process normalises with its half batch: the run trains and
    ends cleanly, and differs from one process by far more than the synchronised run does (so
    the comparison above measures the synchronisation)."""
    args = [a for a in ARGS if a != "--sync-batchnorm"]
    torchrun(2, "train", *args, "--max-steps", "4", "--out", str(tmp_path / "shards"))
    shards = load_checkpoint(tmp_path / "shards" / "checkpoints" / "latest.pt")
    assert shards["step"] == 4
    single, start = runs["single"]["model"], runs["start"]["model"]
    synced, sharded = _relative_diff(single, two["model"], start), _relative_diff(single, shards["model"], start)
    assert sharded > 5 * synced, (synced, sharded)


@pytest.mark.slow
def test_data_parallel_runs_end_cleanly_every_time(tmp_path):
    """Issue 13.9: a torchrun run used to end in SIGABRT ("terminate called without an active
    exception") about 1 time in 4, with progress bars on; 10 runs in a row must all exit 0."""
    args = [
        "train",
        "--dataset",
        "mnist5k",
        "--model",
        "nice-small",
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        "--eval-samples",
        "200",
    ]
    for i in range(10):
        done = torchrun(2, *args, "--out", str(tmp_path / f"run{i}"))
        assert "terminate called" not in done.stderr


def test_actnorm_initialises_from_the_global_batch_under_two_processes(tmp_path):
    """Glow's actnorms take their data-dependent initialisation from the statistics of the global
    batch, summed over the processes: after one step, two processes hold what one does, up to one
    Adam step of rounding-level gradients (±lr each side); per-shard statistics of half batches
    would differ by orders of magnitude more."""
    args = [
        "--dataset", "digits", "--model", "glow-small", "--model-option", "steps=1", "--model-option", "hidden=8",
        "--batch-size", "64", "--lr", "1e-4", "--eval-every", "1", "--no-progress",
    ]  # fmt: skip
    torchrun(1, "train", *args, "--max-steps", "1", "--out", str(tmp_path / "single"))  # float32, as the two
    torchrun(2, "train", *args, "--max-steps", "1", "--out", str(tmp_path / "two"))
    single, two = (
        load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")["model"] for name in ("single", "two")
    )
    init = [k for k in single if k.endswith("initialized")]
    assert init and all(bool(single[k]) and bool(two[k]) for k in init)
    norms = [k[: -len(".log_scale")] for k in single if k.endswith(".log_scale") and f"{k[:-10]}.initialized" in single]
    assert len(norms) == len(init)
    for name in norms:
        for part in ("bias", "log_scale"):
            torch.testing.assert_close(two[f"{name}.{part}"], single[f"{name}.{part}"], rtol=0, atol=3e-4)
