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


def pytest_sessionfinish(session, exitstatus):
    """With CNNFAST_KERNEL_COVERAGE=1 (make test-emulated: the whole suite
    under the emulation), every kernel of the table must have run: a CUDA
    kernel that no test launched is code CI never executed."""
    if os.environ.get("CNNFAST_KERNEL_COVERAGE") != "1" or not EMULATING or exitstatus != 0:
        return
    import cnnfast

    never = [k["name"] for k in cnnfast.info()["cuda_kernels"] if k["emulated_launches"] == 0]
    if never:
        session.config.get_terminal_writer().line(
            f"cnnfast: CUDA kernels the emulated suite never launched: {', '.join(never)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        session.config.get_terminal_writer().line(
            f"cnnfast: every one of the {len(cnnfast.info()['cuda_kernels'])} CUDA kernels ran under the emulation")
