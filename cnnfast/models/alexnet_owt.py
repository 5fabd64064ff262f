"""AlexNet in torchvision's single-tower layout ("one weird trick",
Krizhevsky 2014): the same state_dict keys and shapes as
torchvision.models.alexnet, so its pretrained weights load and run on
cnnfast's kernels."""

import torch
from torch import nn as tnn

from ..convert import convert


class ReferenceAlexNetOWT(tnn.Module):
    """torchvision's alexnet, written out in plain torch.nn."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
            tnn.Conv2d(64, 192, kernel_size=5, padding=2), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
            tnn.Conv2d(192, 384, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.Conv2d(256, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
        self.classifier = tnn.Sequential(
            tnn.Dropout(p=dropout), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(inplace=True),
            tnn.Dropout(p=dropout), tnn.Linear(4096, 4096), tnn.ReLU(inplace=True),
            tnn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet_owt(num_classes=1000, dropout=0.5):
    """torchvision's alexnet layout on cnnfast's layers: convolutions and
    hidden linear layers fused with their ReLU, cnnfast's max pooling; the
    adaptive average pool (an identity at 224×224 input) and dropout stay
    torch's."""
    return convert(ReferenceAlexNetOWT(num_classes, dropout), verbose=False)
