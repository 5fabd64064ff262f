"""Data sources: MNIST (IDX files, or the 8,000 embedded digits), image
folders with AlexNet's augmentation, and synthetic ImageNet-shaped images."""

from .images import ImageFolder, SyntheticImages, augment, center_crop, load_rgb
from .mnist import DataError, lenet_inputs, load_embedded, load_mnist_folder, read_idx, read_mnist

__all__ = [
    "DataError",
    "ImageFolder",
    "SyntheticImages",
    "augment",
    "center_crop",
    "lenet_inputs",
    "load_embedded",
    "load_mnist_folder",
    "load_rgb",
    "read_idx",
    "read_mnist",
]
