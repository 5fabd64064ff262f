"""Images for AlexNet: a folder with one sub-folder per class (read with
PIL), the paper's augmentation, and a synthetic ImageNet-shaped source for
benchmarking.

Augmentation (Krizhevsky et al. 2012, §4.1): each image is rescaled so its
shorter side is 256 and its central 256×256 patch kept; training takes a
random 227×227 crop, a horizontal flip half the time, and adds to every
pixel a random combination of the RGB principal components of ImageNet's
pixels, each scaled by its eigenvalue times N(0, 0.1). Evaluation takes the
central crop. Pixels are then normalized with ImageNet's mean and
standard deviation.
"""

import os

import torch

from .mnist import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Principal components of ImageNet's RGB pixels (in [0, 1]): eigenvalues,
# and eigenvectors as columns (the values fb.resnet.torch published).
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
PCA_SIGMA = 0.1


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    return Image


def load_rgb(path, side=256):
    """The image as a 3×side×side float tensor in [0, 1]: shorter side
    rescaled to `side`, central square kept."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            scale = side / min(width, height)
            size = (max(side, round(width * scale)), max(side, round(height * scale)))
            image = image.resize(size, Image.BILINEAR)
            left, top = (size[0] - side) // 2, (size[1] - side) // 2
            image = image.crop((left, top, left + side, top + side))
            pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    return pixels.reshape(side, side, 3).permute(2, 0, 1).float().div_(255.0)


def augment(image, size=227, generator=None):
    """The paper's training augmentation of a 3×256×256 image in [0, 1]:
    random crop, random flip, PCA colour jitter."""
    side = image.shape[-1]
    top, left = (int(v) for v in torch.randint(0, side - size + 1, (2,), generator=generator))
    crop = image[:, top : top + size, left : left + size]
    if float(torch.rand((), generator=generator)) < 0.5:
        crop = crop.flip(-1)
    alphas = torch.randn(3, generator=generator) * PCA_SIGMA
    shift = torch.tensor(PCA_EIGENVECTORS) @ (alphas * torch.tensor(PCA_EIGENVALUES))
    return crop + shift.view(3, 1, 1)


def center_crop(image, size=227):
    side = image.shape[-1]
    start = (side - size) // 2
    return image[:, start : start + size, start : start + size]


def normalize(image):
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image - mean) / std


class ImageFolder(torch.utils.data.Dataset):
    """root/<class name>/<image>: classes in sorted order are labels 0, 1, …
    Items are (3×227×227 float tensor, label), augmented when `train`."""

    def __init__(self, root, train=True, size=227, generator=None):
        if not os.path.isdir(root):
            raise DataError(f"{root}: no such folder")
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not self.classes:
            raise DataError(f"{root}: no class sub-folders")
        self.samples = [
            (os.path.join(root, name, file), label)
            for label, name in enumerate(self.classes)
            for file in sorted(os.listdir(os.path.join(root, name)))
            if file.lower().endswith(IMAGE_EXTENSIONS)
        ]
        if not self.samples:
            raise DataError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")
        self.train, self.size, self.generator = train, size, generator

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = load_rgb(path)
        image = augment(image, self.size, self.generator) if self.train else center_crop(image, self.size)
        return normalize(image), label


class SyntheticImages(torch.utils.data.Dataset):
    """ImageNet-shaped random images and labels (the same for the same
    index and seed), for benchmarking without data."""

    def __init__(self, length=1024, num_classes=1000, size=227, seed=0):
        self.length, self.num_classes, self.size, self.seed = length, num_classes, size, seed

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not 0 <= index < self.length:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        image = torch.randn(3, self.size, self.size, generator=generator)
        label = int(torch.randint(0, self.num_classes, (), generator=generator))
        return image, label
