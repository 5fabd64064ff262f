"""Image folders with AlexNet's augmentation, and the synthetic source."""

import pytest
import torch

from cnnfast import data
from helpers import ONCE

Image = pytest.importorskip("PIL.Image")  # a GPU machine without network may lack Pillow


def make_folder(root, sizes=((300, 260), (256, 400), (512, 512))):
    for label, color in (("cat", (200, 30, 30)), ("dog", (20, 180, 60))):
        (root / label).mkdir()
        for i, size in enumerate(sizes):
            Image.new("RGB", size, color).save(root / label / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("not an image")


def test_folder_classes_shapes_and_eval_crop(tmp_path):
    make_folder(tmp_path)
    dataset = data.ImageFolder(str(tmp_path), train=False)
    assert dataset.classes == ["cat", "dog"] and len(dataset) == 6
    image, label = dataset[4]
    assert image.shape == (3, 227, 227) and label == 1
    # A flat colour stays flat through resize and crop; normalized per channel.
    expected = (torch.tensor([20, 180, 60]) / 255.0 - torch.tensor(data.images.IMAGENET_MEAN)) / torch.tensor(
        data.images.IMAGENET_STD
    )
    torch.testing.assert_close(image.mean((1, 2)), expected, rtol=0, atol=1e-2)
    assert float(image.std((1, 2)).max()) < 1e-2


def test_training_augmentation():
    gradient = torch.linspace(0, 1, 256).expand(3, 256, 256).clone()  # brighter to the right
    generator = torch.Generator().manual_seed(0)
    crops = [data.augment(gradient, 227, generator) for _ in range(40)]
    assert all(c.shape == (3, 227, 227) for c in crops)
    flipped = [bool(c[0, 0, 0] > c[0, 0, -1]) for c in crops]
    assert any(flipped) and not all(flipped)  # flips half the time
    # On a flat image the colour shift shows alone: one small constant per
    # channel (sigma 0.1 × eigenvalue), different each time.
    flat = torch.full((3, 256, 256), 0.5)
    shifts = [data.augment(flat, 227, generator) - 0.5 for _ in range(40)]
    for shift in shifts:
        assert float((shift - shift[:, :1, :1]).abs().max()) < 1e-6
        assert float(shift.abs().max()) < 0.2
    assert len({round(float(s[0, 0, 0]), 6) for s in shifts}) > 30
    torch.testing.assert_close(data.center_crop(gradient), gradient[:, 14:241, 14:241])


def test_bad_folders_name_themselves(tmp_path):
    with pytest.raises(data.DataError, match="missing: no such folder"):
        data.ImageFolder(str(tmp_path / "missing"))
    with pytest.raises(data.DataError, match="no class sub-folders"):
        data.ImageFolder(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no images"):
        data.ImageFolder(str(tmp_path))
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match="broken.png: not a readable image"):
        data.ImageFolder(str(tmp_path))[0]


def test_synthetic_images():
    source = data.SyntheticImages(length=5, num_classes=10)
    image, label = source[3]
    assert image.shape == (3, 227, 227) and 0 <= label < 10
    again, same_label = source[3]
    assert torch.equal(image, again) and label == same_label
    assert not torch.equal(source[2][0], image)
    with pytest.raises(IndexError):
        source[5]


@ONCE
def test_trains_alexnet_on_a_folder(tmp_path):
    from cnnfast.train import train_alexnet

    make_folder(tmp_path)
    model, history = train_alexnet(data=str(tmp_path), steps=1, batch_size=2, progress=False, log=lambda *_: None)
    assert model.fc8.weight.shape == (2, 4096)  # one output per class folder
    assert len(history) == 1 and history[0]["loss"] > 0
