"""The classic networks on cnnfast's kernels."""

from .lenet import LeNet5, ReferenceLeNet5

__all__ = ["LeNet5", "ReferenceLeNet5"]
