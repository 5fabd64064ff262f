"""pytest hooks for the suite; shared helpers live in helpers.py."""

import pytest
import torch

from helpers import CUDA, EMULATING


def pytest_report_header(config):
    mode = "CUDA emulation (CNNFAST_EMULATE_CUDA=1)" if EMULATING else "CPU kernels"
    return f"cnnfast: CPU tensors run the {mode}; CUDA GPU visible: {CUDA}; torch {torch.__version__}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
