"""The two-tower AlexNet: its parameters, its initialisation, and its
forward and backward against the same network written with torch.nn.functional."""

import pytest
import torch
import torch.nn.functional as F

from cnnfast.models import AlexNet, ReferenceAlexNet
from helpers import CUDA, EMULATING, RecordOps

KEYS = {
    "conv1.weight": (96, 3, 11, 11), "conv2.weight": (256, 48, 5, 5), "conv3.weight": (384, 256, 3, 3),
    "conv4.weight": (384, 192, 3, 3), "conv5.weight": (256, 192, 3, 3), "fc6.weight": (4096, 9216),
    "fc7.weight": (4096, 4096), "fc8.weight": (10, 4096),
}


def reference_forward(model, x):
    """The two towers in plain torch: tower A is the first half of every layer."""
    size, alpha, beta, k = model.lrn

    def half(layer, tower):
        cut = (layer.weight.shape[0] + 1) // 2
        rows = slice(0, cut) if tower == 0 else slice(cut, None)
        return layer.weight[rows], layer.bias[rows]

    def stage(t, tower):  # relu, LRN within the tower, 3×3/2 max pooling
        return F.max_pool2d(F.local_response_norm(F.relu(t), size, alpha, beta, k), 3, 2)

    towers = [stage(F.conv2d(stage(F.conv2d(x, *half(model.conv1, t), stride=4), t), *half(model.conv2, t), padding=2), t)
              for t in range(2)]
    joined = torch.cat(towers, 1)
    outs = []
    for t in range(2):
        x3 = F.relu(F.conv2d(joined, *half(model.conv3, t), padding=1))
        x4 = F.relu(F.conv2d(x3, *half(model.conv4, t), padding=1))
        outs.append(F.max_pool2d(F.relu(F.conv2d(x4, *half(model.conv5, t), padding=1)), 3, 2))
    h = torch.flatten(torch.cat(outs, 1), 1)
    for layer in (model.fc6, model.fc7):
        h = torch.cat([F.relu(F.linear(h, *half(layer, t))) for t in range(2)], 1)
    return torch.cat([F.linear(h, *half(model.fc8, t)) for t in range(2)], 1)


def test_parameters_are_whole_layers_with_the_papers_initialisation():
    torch.manual_seed(0)
    model = AlexNet(num_classes=10)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith("weight")}
    assert shapes == KEYS
    assert model.lrn == (5, 5e-4, 0.75, 2.0)
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert torch.all(getattr(model, name).bias == 1)
    for name in ("conv1", "conv3", "fc8"):
        assert torch.all(getattr(model, name).bias == 0)
    weight = model.fc7.weight.detach()
    assert abs(float(weight.std()) - 0.01) < 1e-3 and abs(float(weight.mean())) < 1e-3


@pytest.mark.parametrize("split", ["none", "streams"])
def test_matches_the_two_tower_network_in_torch(split):
    torch.manual_seed(0)
    model = AlexNet(num_classes=11, split=split).double().eval()  # odd: tower A takes 6 classes
    for layer in model.children():  # larger weights than the paper's, so every layer matters
        torch.nn.init.normal_(layer.weight, 0.0, 0.05)
    x = torch.randn(1, 3, 227, 227, dtype=torch.float64)
    out = model(x)
    expected = reference_forward(model, x)
    assert out.shape == (1, 11)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(model.parameters()))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_lrn_stage_is_fused_on_the_cpu_kernels_only():
    """ReLU, LRN and pooling after conv1 and conv2: the fused op on the CPU
    kernels; on the CUDA kernels (here emulated) the convolution's ReLU, then
    LRN and max pooling as their own ops (faster there)."""
    model = AlexNet(num_classes=10).eval()
    with torch.no_grad(), RecordOps() as mode:
        model(torch.randn(1, 3, 227, 227))
    names = [func.name() for func in mode.seen]
    fused = names.count("cnnfast::_relu_lrn_max_pool2d_with_offsets")
    unfused = names.count("cnnfast::local_response_norm")
    assert (fused, unfused) == ((0, 4) if EMULATING else (4, 0))
    assert names.count("cnnfast::_max_pool2d_with_offsets") == (6 if EMULATING else 2)


def test_compiles_to_one_graph():
    torch.manual_seed(0)
    model = AlexNet(num_classes=10).eval()
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x))


def test_reference_alexnet_is_the_same_network_in_torch_nn():
    """The benchmarks' reference: same state_dict, same outputs and gradients,
    in training mode too (dropout draws the same masks on fc6's and fc7's
    outputs)."""
    torch.manual_seed(0)
    model = AlexNet(num_classes=10).double().train()
    reference = ReferenceAlexNet(num_classes=10).double().train()
    reference.load_state_dict(model.state_dict())
    for layer in model.children():  # larger weights than the paper's, so every layer matters
        torch.nn.init.normal_(layer.weight, 0.0, 0.05)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 227, 227, dtype=torch.float64)
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)
    expected = reference(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(reference.eval()(x[:1]), reference_forward(model, x[:1]))
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(reference.parameters()))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_split_modes_agree_and_bad_split_is_refused():
    torch.manual_seed(0)
    none = AlexNet(num_classes=11).eval()
    streams = AlexNet(num_classes=11, split="streams").eval()
    devices = AlexNet(num_classes=11, split="devices", devices=["cpu", "cpu"]).eval()
    streams.load_state_dict(none.state_dict())
    devices.load_state_dict(none.state_dict())  # one checkpoint for every split
    x = torch.randn(2, 3, 227, 227)
    expected = none(x)
    torch.testing.assert_close(streams(x), expected, rtol=0, atol=0)
    # Its fully connected layers as halves: rounded differently.
    torch.testing.assert_close(devices(x), expected)
    with pytest.raises(ValueError, match="split must be"):
        AlexNet(split="towers")
    with pytest.raises(ValueError, match="devices=\\[device of tower A"):
        AlexNet(split="devices")


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")
def test_streams_split_equals_none_on_the_gpu():
    """The towers on two CUDA streams compute what one stream computes,
    gradients included: a missing wait between the streams would read a
    tower's input or output before it is written."""
    torch.manual_seed(0)
    none = AlexNet(num_classes=11).cuda().eval()
    streams = AlexNet(num_classes=11, split="streams").cuda().eval()
    streams.load_state_dict(none.state_dict())
    x = torch.randn(8, 3, 227, 227, device="cuda")
    expected = none(x)
    out = streams(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grads = torch.autograd.grad(out.square().sum(), list(streams.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(none.parameters()))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_devices_split_keeps_whole_layer_checkpoints_and_gradients():
    torch.manual_seed(0)
    whole = AlexNet(num_classes=7).double().train()
    split = AlexNet(num_classes=7, split="devices", devices=["cpu", "cpu"]).double().train()
    split.load_state_dict(whole.state_dict())
    state = split.state_dict()
    assert list(state) == list(whole.state_dict())
    for key, value in whole.state_dict().items():
        assert torch.equal(state[key], value), key
    whole.dropout = split.dropout = 0.0
    x = torch.randn(1, 3, 227, 227, dtype=torch.float64)
    whole(x).square().sum().backward()
    split(x).square().sum().backward()
    for name, layer in whole.named_children():
        halves = getattr(split, name)
        torch.testing.assert_close(torch.cat([halves.weight_a.grad, halves.weight_b.grad]), layer.weight.grad)
        torch.testing.assert_close(torch.cat([halves.bias_a.grad, halves.bias_b.grad]), layer.bias.grad)


@pytest.mark.parametrize("split", ["none", "streams"])
def test_each_convolution_parameter_reaches_the_towers_through_one_split(split):
    """Backward joins each parameter's two halves with one copy: slicing
    each half out instead would fill a whole-layer gradient per half and
    add them (151 MB for fc6's weight). On one device the fully connected
    layers run whole, with no halves to join."""
    model = AlexNet(num_classes=10, split=split)
    out = model(torch.randn(1, 3, 227, 227))
    names, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    assert "SliceBackward0" not in names
    halved = [p for name, p in model.named_parameters() if name.startswith("conv")]
    assert names.count("SplitWithSizesBackward0") == len(halved)
