"""Data sources: MNIST (IDX files, or the 8,000 embedded digits)."""

from .mnist import DataError, lenet_inputs, load_embedded, load_mnist_folder, read_idx, read_mnist

__all__ = ["DataError", "lenet_inputs", "load_embedded", "load_mnist_folder", "read_idx", "read_mnist"]
