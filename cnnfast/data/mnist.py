"""MNIST in its IDX format (gzip or raw), the 8,000 embedded digits, and
LeNet-5's preprocessing.

An IDX file: a big-endian header — magic (0x0000 0801 for labels, 0x0000
0803 for images), then one uint32 size per dimension — and the uint8 data.
"""

import gzip
import os
import struct
from importlib import resources

import torch

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
# Mean and standard deviation of MNIST's pixels (scaled to [0, 1]): the
# usual normalization constants.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class DataError(ValueError):
    """A data file that cannot be read as what it should be; the message
    names the file."""


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise DataError(f"{path}: broken gzip stream ({error})") from None
    return data


def read_idx(path, magic):
    """The tensor (uint8) in an IDX file, checking its magic number and size."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DataError(f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x}")
    dims = found & 0xFF
    if len(data) < 4 + 4 * dims:
        raise DataError(f"{path}: truncated header")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    count = 1
    for size in shape:
        count *= size
    body = data[4 + 4 * dims :]
    if len(body) != count:
        raise DataError(f"{path}: header says {count} bytes of data for shape {tuple(shape)}, file has {len(body)}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def read_mnist(images_path, labels_path):
    """(images uint8 N×28×28, labels int64 N) from a pair of IDX files."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.dim() != 3:
        raise DataError(f"{images_path}: expected N×rows×cols images, got shape {tuple(images.shape)}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels"
        )
    if labels.numel() and int(labels.max()) > 9:
        raise DataError(f"{labels_path}: labels must be digits 0-9, found {int(labels.max())}")
    return images, labels.long()


def _find(folder, prefix, kind):
    """The standard MNIST file name for `prefix` (train or t10k), gzip or raw."""
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz",
                 f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
                 f"{prefix}-{kind}.idx{3 if kind == 'images' else 1}-ubyte"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise DataError(f"{folder}: no {prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte[.gz] file")


def load_mnist_folder(folder, split):
    """A standard MNIST folder's `train` or `t10k` split."""
    return read_mnist(_find(folder, split, "images"), _find(folder, split, "labels"))


def load_embedded():
    """The 8,000 MNIST digits shipped with cnnfast (provenance:
    cnnfast/data/mnist8k/README.md), in a fixed shuffled order."""
    root = resources.files("cnnfast.data") / "mnist8k"
    with resources.as_file(root) as folder:
        return read_mnist(
            os.path.join(folder, "mnist8k-images-idx3-ubyte.gz"),
            os.path.join(folder, "mnist8k-labels-idx1-ubyte.gz"),
        )


def lenet_inputs(images):
    """LeNet-5's input: 28×28 uint8 digits zero-padded to 32×32, scaled to
    [0, 1] and normalized; N×1×32×32 float32."""
    x = images.float().div_(255.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))
    return ((x - MNIST_MEAN) / MNIST_STD).unsqueeze(1)
