"""The classic networks on cnnfast's kernels."""

from .alexnet import AlexNet, ReferenceAlexNet
from .alexnet_owt import ReferenceAlexNetOWT, alexnet_owt
from .lenet import LeNet5, ReferenceLeNet5

__all__ = ["AlexNet", "LeNet5", "ReferenceAlexNet", "ReferenceAlexNetOWT", "ReferenceLeNet5", "alexnet_owt"]
