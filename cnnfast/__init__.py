"""cnnfast: hand-written CPU and CUDA kernels for the classic CNN layers,
registered as PyTorch operators (torch.ops.cnnfast.*) with autograd."""

from ._loader import load_extension

_C = load_extension()

from . import data, models, nn, testing  # noqa: E402
from ._info import info  # noqa: E402
from .convert import convert  # noqa: E402
from .ops import (  # noqa: E402
    avg_pool2d,
    conv2d,
    conv2d_avg_pool2d,
    lenet5_forward,
    linear,
    local_response_norm,
    max_pool2d,
    relu,
    relu_lrn_max_pool2d,
    tanh,
)

__version__ = "0.1.0"
__all__ = [
    "avg_pool2d",
    "conv2d",
    "conv2d_avg_pool2d",
    "convert",
    "data",
    "info",
    "lenet5_forward",
    "linear",
    "local_response_norm",
    "max_pool2d",
    "models",
    "nn",
    "relu",
    "relu_lrn_max_pool2d",
    "tanh",
    "testing",
]
