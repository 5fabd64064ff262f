"""LeNet-5 (LeCun et al. 1998) as the seed defines it: tanh, average pooling,
a 32×32 input (MNIST's 28×28 zero-padded by 2)."""

import torch
from torch import nn as tnn

from .. import nn, ops
from ._inputs import check_input

# MNIST's 28×28 digits are padded by 2, as the paper did.
INPUT_NOTE = ": MNIST's 28×28 digits zero-padded by 2 (cnnfast.data.lenet_inputs does it)"


class ReferenceLeNet5(tnn.Module):
    """The plain-PyTorch LeNet-5 (docs/architecture.md, "Models"): the reference the
    benchmarks and `train --reference` run, and the state_dict LeNet5 loads."""

    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 6, 5), tnn.Tanh(), tnn.AvgPool2d(2),
            tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
        )
        self.classifier = tnn.Sequential(
            tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(), tnn.Linear(84, 10),
        )

    def forward(self, x):
        check_input("cnnfast.models.ReferenceLeNet5", x, 1, 32, INPUT_NOTE)
        return self.classifier(torch.flatten(self.features(x), 1))


class LeNet5(tnn.Module):
    """LeNet-5 on cnnfast's kernels, each convolution and hidden linear
    layer fused with its tanh. The fused-away Tanh modules stay as
    parameterless Identity placeholders, so the state_dict keys and shapes
    are ReferenceLeNet5's: its checkpoints load unchanged.

    Without autograd (torch.no_grad, inference_mode) the whole network runs
    as one op, cnnfast.lenet5_forward: on CUDA one kernel whose blocks keep
    every feature map in shared memory; with autograd the layers run one by
    one and keep what backward needs."""

    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(
            nn.Conv2d(1, 6, 5, activation="tanh"), tnn.Identity(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5, activation="tanh"), tnn.Identity(), nn.AvgPool2d(2),
        )
        self.classifier = tnn.Sequential(
            nn.Linear(400, 120, activation="tanh"), tnn.Identity(),
            nn.Linear(120, 84, activation="tanh"), tnn.Identity(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        check_input("cnnfast.models.LeNet5", x, 1, 32, INPUT_NOTE)
        if not torch.is_grad_enabled():
            # The layers unpacked by hand: a third of the time self.parameters() takes.
            conv1, _, _, conv2, _, _ = self.features
            fc1, _, fc2, _, fc3 = self.classifier
            return ops.lenet5_forward(
                x, conv1.weight, conv1.bias, conv2.weight, conv2.bias,
                fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias,
            )
        return self.classifier(torch.flatten(self.features(x), 1))
