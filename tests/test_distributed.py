"""Data parallelism with torchrun on 2 CPU processes (gloo): same global batch, same parameters."""

import os
import subprocess
import sys

import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.cli import main

ARGS = ["--dataset", "mnist5k", "--model", "nice-small", "--objective", "wgan-gp", "--lam", "0.1", "--n-critic", "2",
        "--batch-size", "50", "--eval-every", "2", "--eval-samples", "200", "--no-progress"]


def torchrun(nproc, *argv):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "flowgan", *argv]
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


def test_two_processes_match_one(tmp_path, runs):
    single = runs["single"]
    torchrun(2, "train", *ARGS, "--max-steps", "4", "--out", str(tmp_path / "two"))
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "latest.pt")
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
