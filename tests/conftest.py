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
