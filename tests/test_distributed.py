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


def _max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    run = tmp_path_factory.mktemp("ddp") / "single"
    assert main(["train", *ARGS, "--max-steps", "4", "--out", str(run)]) == 0
    return load_checkpoint(run / "checkpoints" / "latest.pt")


def test_two_processes_match_one(tmp_path, single):
    torchrun(2, "train", *ARGS, "--max-steps", "4", "--out", str(tmp_path / "two"))
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "latest.pt")
    assert two["step"] == single["step"] == 4
    assert _max_diff(single["model"], two["model"]) < 1e-6
    assert _max_diff(single["critic"], two["critic"]) < 1e-6
    # sharded evaluation gives the same validation NLL
    assert two["best"]["val_nll_nats"]["value"] == pytest.approx(single["best"]["val_nll_nats"]["value"], abs=1e-3)


def test_resume_with_a_different_number_of_processes(tmp_path, single):
    torchrun(2, "train", *ARGS, "--max-steps", "2", "--out", str(tmp_path / "run"))
    assert main(["train", "--resume", str(tmp_path / "run"), "--max-steps", "4", "--no-progress"]) == 0
    resumed = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert resumed["step"] == 4
    assert _max_diff(single["model"], resumed["model"]) < 1e-6
