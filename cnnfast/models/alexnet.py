"""The original two-tower AlexNet (Krizhevsky, Sutskever, Hinton 2012) on
cnnfast's ops (docs/architecture.md, "Models").

Parameters are whole layers — tower A owns the first half of each layer's
outputs — so one checkpoint runs in every split mode. conv2, conv4 and conv5
connect within a tower; conv3 and the fully connected layers take both
towers' maps. LRN (with ReLU and the 3×3/2 max pooling, as one fused op
on the CPU) runs within each tower, so its window never crosses the tower
boundary.
"""

import torch
import torch.nn.functional as F
from torch import nn as tnn

from .. import ops
from ..testing import emulating_cuda
from ._inputs import check_input

TOWERS = 2
PARAMETERS = ("weight", "bias")


def _fuse_lrn_stage(x):
    """Whether ReLU, LRN and the max pooling after conv1 and conv2 run as the
    fused op. They do on the CPU kernels, where it measured 1.25× faster
    than the three ops; not on the CUDA kernels (on a GPU, or emulated),
    where it measured 0.75–0.89× the unfused chain on an H200 (RESULTS.md,
    runs 3, 4 and 6): there the convolution applies the ReLU in its epilogue
    and LRN and max pooling run as their own ops."""
    return not (x.is_cuda or _emulating_cuda())


@torch.compiler.assume_constant_result
def _emulating_cuda():
    # A constant to torch.compile, which cannot trace the extension's switch.
    return emulating_cuda()


def _cut(outputs):
    """Tower A's share of a layer's outputs (the extra one of an odd count)."""
    return (outputs + 1) // 2


class _SplitLayer(tnn.Module):
    """A layer's parameters as two halves, each on its tower's device
    (split="devices"). Its state_dict shows the whole layer — `weight` and
    `bias`, tower A's half first — so checkpoints are those of every split."""

    def __init__(self, layer, devices):
        super().__init__()
        cut = _cut(layer.weight.shape[0])
        for name in PARAMETERS:
            whole = getattr(layer, name).detach()
            self.register_parameter(f"{name}_a", tnn.Parameter(whole[:cut].to(devices[0]).clone()))
            self.register_parameter(f"{name}_b", tnn.Parameter(whole[cut:].to(devices[1]).clone()))
        self._register_state_dict_hook(_SplitLayer._join_halves)
        self._register_load_state_dict_pre_hook(_SplitLayer._split_whole, with_module=True)

    def half(self, tower):
        suffix = "a" if tower == 0 else "b"
        return getattr(self, f"weight_{suffix}"), getattr(self, f"bias_{suffix}")

    @staticmethod
    def _join_halves(module, state_dict, prefix, local_metadata):
        for name in PARAMETERS:
            a, b = state_dict.pop(prefix + name + "_a"), state_dict.pop(prefix + name + "_b")
            state_dict[prefix + name] = torch.cat([a, b.to(a.device)])

    @staticmethod
    def _split_whole(module, state_dict, prefix, *args):
        for name in PARAMETERS:
            if prefix + name in state_dict:
                whole = state_dict.pop(prefix + name)
                cut = _cut(whole.shape[0])
                state_dict[prefix + name + "_a"] = whole[:cut]
                state_dict[prefix + name + "_b"] = whole[cut:]


def _add_layers(model, num_classes, dropout):
    """The whole layers, with the paper's initialisation, and the LRN's and
    dropout's settings."""
    model.dropout = dropout
    # (size, alpha, beta, k) in torch's convention: the paper's alpha
    # (1e-4, on the sum of squares) times size, as torch averages them.
    model.lrn = (5, 5e-4, 0.75, 2.0)
    model.conv1 = tnn.Conv2d(3, 96, 11, stride=4)
    model.conv2 = tnn.Conv2d(96, 256, 5, padding=2, groups=TOWERS)
    model.conv3 = tnn.Conv2d(256, 384, 3, padding=1)
    model.conv4 = tnn.Conv2d(384, 384, 3, padding=1, groups=TOWERS)
    model.conv5 = tnn.Conv2d(384, 256, 3, padding=1, groups=TOWERS)
    model.fc6 = tnn.Linear(256 * 6 * 6, 4096)
    model.fc7 = tnn.Linear(4096, 4096)
    model.fc8 = tnn.Linear(4096, num_classes)
    _paper_initialisation(model)


def _paper_initialisation(model):
    """Weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
    fully connected layers, 0 elsewhere."""
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for name, layer in model.named_children():
        tnn.init.normal_(layer.weight, 0.0, 0.01)
        tnn.init.constant_(layer.bias, 1.0 if name in ones else 0.0)


class ReferenceAlexNet(tnn.Module):
    """The same two-tower network in plain torch.nn (cuDNN's or oneDNN's
    path): the reference the benchmarks run. The towers are channel groups:
    grouped convolutions for conv2, conv4 and conv5, and the LRN applied to
    each tower's half of the channels. Its state_dict is AlexNet's."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        _add_layers(self, num_classes, dropout)

    def reset_parameters(self):
        _paper_initialisation(self)

    def _stage(self, x):
        """ReLU, LRN within each tower, 3×3/2 max pooling."""
        n, channels, height, width = x.shape
        towers = F.relu(x).reshape(n * TOWERS, channels // TOWERS, height, width)
        return F.max_pool2d(F.local_response_norm(towers, *self.lrn).reshape(x.shape), 3, 2)

    def forward(self, x):
        check_input("cnnfast.models.ReferenceAlexNet", x, 3, 227)
        x = self._stage(self.conv2(self._stage(self.conv1(x))))
        x = F.relu(self.conv4(F.relu(self.conv3(x))))
        x = torch.flatten(F.max_pool2d(F.relu(self.conv5(x)), 3, 2), 1)
        x = F.dropout(F.relu(self.fc6(x)), self.dropout, self.training)
        x = F.dropout(F.relu(self.fc7(x)), self.dropout, self.training)
        return self.fc8(x)


class AlexNet(tnn.Module):
    """split="none": the towers one after the other on the current stream.
    split="streams": on a GPU, each tower's convolutional layers on its own
    CUDA stream, joined at conv3 and before the fully connected layers; on
    a CPU the towers run one after the other (the same numbers). On one
    device the fully connected layers, which take both towers' inputs, run
    whole (one GEMM each).
    split="devices": tower A on devices[0], tower B on devices[1], each
    half's parameters on its tower's device, the activations crossing
    between them at the joins (non-blocking copies); the result on
    devices[0]. Its fully connected layers run as halves, one per device,
    so its results differ from the other splits' by rounding. Build the
    model in this mode rather than moving it with .to(), which would put
    both halves on one device."""

    def __init__(self, num_classes=1000, dropout=0.5, split="none", devices=None):
        super().__init__()
        if split not in ("none", "streams", "devices"):
            raise ValueError(
                f"cnnfast.models.AlexNet: split must be 'none', 'streams' or 'devices', got {split!r}"
            )
        if (split == "devices") != (devices is not None) or (devices is not None and len(devices) != TOWERS):
            raise ValueError("cnnfast.models.AlexNet: split='devices' takes devices=[device of tower A, "
                             f"device of tower B], and only it does; got split={split!r}, devices={devices!r}")
        self.split = split
        self.devices = None if devices is None else [torch.device(d) for d in devices]
        _add_layers(self, num_classes, dropout)
        if self.devices is not None:
            for name, layer in list(self.named_children()):
                setattr(self, name, _SplitLayer(layer, self.devices))

    def reset_parameters(self):
        """The paper's initialisation (see ReferenceAlexNet.reset_parameters)."""
        _paper_initialisation(self)

    def _halves(self, layer):
        """Each tower's share of a layer's outputs, [(weight, bias)] * 2. The
        whole parameters are split once for both towers: backward then joins
        the halves' gradients with one copy, where slicing each half out on
        its own would cost a zero-filled whole-layer gradient per half and
        their sum (fc6's weight is 151 MB)."""
        if isinstance(layer, _SplitLayer):
            return [layer.half(tower) for tower in range(TOWERS)]
        cut = _cut(layer.weight.shape[0])
        sizes = [cut, layer.weight.shape[0] - cut]
        return list(zip(layer.weight.split(sizes), layer.bias.split(sizes)))

    def _to_tower(self, tensor, tower):
        """The tensor on the tower's device (split="devices"), else as is."""
        if self.devices is None:
            return tensor
        return tensor.to(self.devices[tower], non_blocking=True)

    def _join(self, parts, tower=0):
        """Both towers' maps side by side, on the given tower's device."""
        return torch.cat([self._to_tower(part, tower) for part in parts], 1)

    def _towers(self, fn):
        """fn(tower) for both towers: concurrently on two CUDA streams under
        split="streams", otherwise one after the other."""
        if self.split != "streams" or not torch.cuda.is_available() or not self._on_cuda():
            return [fn(tower) for tower in range(TOWERS)]
        current = torch.cuda.current_stream()
        streams = [torch.cuda.Stream() for _ in range(TOWERS)]
        results = []
        for tower, stream in enumerate(streams):
            stream.wait_stream(current)
            with torch.cuda.stream(stream):
                results.append(fn(tower))
        for stream, result in zip(streams, results):
            current.wait_stream(stream)
            # The caching allocator must not reuse the memory while the
            # current stream may still read it.
            result.record_stream(current)
        return results

    def _on_cuda(self):
        return next(self.parameters()).is_cuda

    def _dropout(self, x):
        return tnn.functional.dropout(x, self.dropout, self.training)

    def features(self, x):
        """The convolutional part: (N, 3, 227, 227) → (N, 256, 6, 6)."""
        size, alpha, beta, k = self.lrn

        conv1, conv2, conv3, conv4, conv5 = (
            self._halves(layer) for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)
        )

        def normalized_stage(t, layer, **conv_args):
            # conv → ReLU → the tower's LRN → 3×3/2 max pooling.
            if _fuse_lrn_stage(t):
                return ops.relu_lrn_max_pool2d(ops.conv2d(t, *layer, **conv_args), size, alpha, beta, k)
            out = ops.conv2d(t, *layer, **conv_args, activation="relu")
            return ops.max_pool2d(ops.local_response_norm(out, size, alpha, beta, k), 3, 2)

        def first_stage(tower):
            x1 = normalized_stage(self._to_tower(x, tower), conv1[tower], stride=4)
            return normalized_stage(x1, conv2[tower], padding=2)

        first = self._towers(first_stage)

        def second_stage(tower):
            x3 = ops.conv2d(self._join(first, tower), *conv3[tower], padding=1, activation="relu")  # both towers
            x4 = ops.conv2d(x3, *conv4[tower], padding=1, activation="relu")
            x5 = ops.conv2d(x4, *conv5[tower], padding=1, activation="relu")
            return ops.max_pool2d(x5, 3, 2)

        return self._join(self._towers(second_stage))

    def classifier(self, features):
        # Dropout on the outputs of fc6 and fc7, as in the paper.
        x = torch.flatten(features, 1)
        for layer, activation in ((self.fc6, "relu"), (self.fc7, "relu"), (self.fc8, None)):
            x = self._fully_connected(layer, x, activation)
            if activation is not None:
                x = self._dropout(x)
        return x

    def _fully_connected(self, layer, x, activation):
        """Both towers' outputs of a fully connected layer. Each tower takes
        the same whole input, so on one device the layer runs whole: one
        GEMM, as large as both halves' together, where the halves' outputs
        and their weights' gradients would be joined by copies (fc6's and
        fc7's gradients: 218 MB a step, 13% of the training step at batch 8
        on a 2-core CPU). Under split="devices" each device computes its
        tower's half."""
        if self.devices is None:
            return ops.linear(x, layer.weight, layer.bias, activation=activation)
        halves = self._halves(layer)
        return self._join(
            self._towers(lambda tower: ops.linear(self._to_tower(x, tower), *halves[tower], activation=activation))
        )

    def forward(self, x):
        check_input("cnnfast.models.AlexNet", x, 3, 227, ": the paper's 227×227 crops")
        return self.classifier(self.features(x))
