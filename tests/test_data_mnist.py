"""The MNIST IDX reader, the embedded digits and LeNet-5's preprocessing."""

import gzip
import struct

import pytest
import torch

from cnnfast import data
from cnnfast.data.mnist import IMAGES_MAGIC, LABELS_MAGIC


def write_idx(path, magic, tensor, compress=False):
    header = struct.pack(">I", magic) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    payload = header + bytes(tensor.to(torch.uint8).flatten().tolist())
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if compress else payload)


def test_embedded_digits():
    images, labels = data.load_embedded()
    assert images.shape == (8000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (8000,) and labels.dtype == torch.int64
    # Class counts from the provenance note (cnnfast/data/mnist8k/README.md).
    assert torch.bincount(labels).tolist() == [798, 875, 785, 831, 800, 698, 804, 864, 756, 789]
    assert int(images.max()) == 255 and int(images.min()) == 0


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_reads_a_standard_folder(tmp_path, compress):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5])
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", IMAGES_MAGIC, images, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", LABELS_MAGIC, labels, compress)
    got_images, got_labels = data.load_mnist_folder(str(tmp_path), "t10k")
    assert torch.equal(got_images, images) and torch.equal(got_labels, labels)


def test_bad_files_name_themselves(tmp_path):
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    good_images = tmp_path / "images"
    write_idx(good_images, IMAGES_MAGIC, images)
    labels3 = tmp_path / "labels3"
    write_idx(labels3, LABELS_MAGIC, torch.tensor([1, 2, 3]))
    with pytest.raises(data.DataError, match=r"has 4 images but .*labels3 has 3 labels"):
        data.read_mnist(str(good_images), str(labels3))
    wrong_magic = tmp_path / "wrong_magic"
    write_idx(wrong_magic, LABELS_MAGIC, torch.tensor([1]))
    with pytest.raises(data.DataError, match=r"wrong_magic: magic number 0x00000801, expected 0x00000803"):
        data.read_idx(str(wrong_magic), IMAGES_MAGIC)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(good_images.read_bytes()[:-10])
    with pytest.raises(data.DataError, match=r"truncated: header says 3136 bytes"):
        data.read_idx(str(truncated), IMAGES_MAGIC)
    with pytest.raises(data.DataError, match=r"missing: cannot read"):
        data.read_idx(str(tmp_path / "missing"), IMAGES_MAGIC)
    broken_gzip = tmp_path / "broken.gz"
    broken_gzip.write_bytes(gzip.compress(good_images.read_bytes())[:40])
    with pytest.raises(data.DataError, match=r"broken.gz: broken gzip stream"):
        data.read_idx(str(broken_gzip), IMAGES_MAGIC)
    with pytest.raises(data.DataError, match=r"no t10k-images-idx3-ubyte"):
        data.load_mnist_folder(str(tmp_path), "t10k")


def test_lenet_inputs_pad_and_normalize():
    images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    x = data.lenet_inputs(images)
    assert x.shape == (2, 1, 32, 32) and x.dtype == torch.float32
    background = (0.0 - 0.1307) / 0.3081
    assert torch.allclose(x[:, :, :2, :], torch.full_like(x[:, :, :2, :], background))
    assert torch.allclose(x[:, :, 2:30, 2:30], torch.full((2, 1, 28, 28), (1.0 - 0.1307) / 0.3081))
