"""Tests run in float64 by default: log-determinants are checked against brute-force Jacobians."""

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _float64_and_seed():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def shared_data_dir():
    """The full offline datasets of this workplace (../shared/data), if present; else skip."""
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.environ.get("FLOWGAN_DATA"), os.path.join(here, "..", "..", "shared", "data")):
        if cand and os.path.isdir(os.path.join(cand, "mnist")):
            return os.path.abspath(cand)
    pytest.skip("full MNIST not available offline (../shared/data)")


@pytest.fixture(scope="session")
def two_digit_runs(tmp_path_factory):
    """Two short NICE runs on the 8x8 digits (3 and 6 updates, seeds 0 and 1), trained once for
    every test that only reads runs (the analyses and their commands)."""
    from flowgan.config import TrainConfig
    from flowgan.training import Trainer

    base = tmp_path_factory.mktemp("analysis")
    out = []
    for name, steps, seed in (("short", 3, 0), ("longer", 6, 1)):
        cfg = TrainConfig(
            dataset="digits", model="nice-small", max_steps=steps, eval_every=3, train_eval_samples=50, seed=seed
        )
        Trainer(cfg, base / name, progress=False).fit()
        out.append(base / name)
    return out
