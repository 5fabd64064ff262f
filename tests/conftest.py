"""pytest hooks for the suite; shared helpers live in helpers.py."""

import os

# torch.compile's on-disk caches outlive a rebuild of the extension: a graph
# cached against an older op schema would be replayed. Compile afresh.
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import CUDA, EMULATING  # noqa: E402


def pytest_report_header(config):
    mode = "CUDA emulation (CNNFAST_EMULATE_CUDA=1)" if EMULATING else "CPU kernels"
    return f"cnnfast: CPU tensors run the {mode}; CUDA GPU visible: {CUDA}; torch {torch.__version__}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
