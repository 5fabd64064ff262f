"""conv2d and linear (the implicit-GEMM engine) against torch in float64:
values, the three gradients, layouts, errors, gradcheck, opcheck, compile,
and the drop-in modules."""

import zlib

import pytest
import torch
import torch.nn.functional as F

import cnnfast
from helpers import (
    ALL_DTYPES,
    DEVICES,
    EMULATING,
    TOLERANCE,
    assert_close,
    assert_close_to_scale,
    skip_unsupported,
    slow_in_emulation,
)

ops = torch.ops.cnnfast

ACTIVATIONS = [None, "relu", "tanh"]


def activate(out, activation):
    return {None: out, "relu": F.relu(out), "tanh": torch.tanh(out)}[activation]


def reference_conv(x, weight, bias, stride, padding, groups, activation):
    return activate(F.conv2d(x, weight, bias, stride, padding, 1, groups), activation)


def reference_linear(x, weight, bias, activation):
    return activate(F.linear(x, weight, bias), activation)


# (name, N, C, H, W, K, R, S, stride, padding, groups); batch shrinks in the
# emulation, where the tiled GPU kernel runs thread by thread.
CONV_CASES = [
    ("lenet_conv1", 4, 1, 32, 32, 6, 5, 5, 1, 0, 1),
    ("lenet_conv2", 4, 6, 14, 14, 16, 5, 5, 1, 0, 1),
    ("alexnet_conv2", 1, 96, 27, 27, 256, 5, 5, 1, 2, 2),
    ("alexnet_conv3", 1, 256, 13, 13, 384, 3, 3, 1, 1, 1),
    ("alexnet_conv4", 1, 384, 13, 13, 384, 3, 3, 1, 1, 2),
    ("alexnet_conv5", 1, 384, 13, 13, 256, 3, 3, 1, 1, 2),
    ("one_by_one", 2, 40, 7, 9, 30, 1, 1, 1, 0, 1),
    ("seven_by_seven", 2, 3, 23, 19, 8, 7, 7, 2, 3, 1),
    ("stride3", 2, 4, 17, 16, 5, 3, 3, 3, 1, 1),
    ("stride4_rect", 1, 3, 31, 29, 8, 11, 9, 4, 2, 1),
    ("groups3_prime", 3, 9, 13, 11, 15, 3, 2, 1, (1, 0), 3),
    ("rect_stride", 2, 5, 11, 17, 7, 3, 5, (2, 1), (0, 2), 1),
    # A horizontal stride with padding wider than it and a width it does not
    # divide: the CPU reads such an input's phases (cpu/phase_split.h).
    ("stride_w3_wide_padding", 2, 4, 9, 22, 6, 4, 7, (1, 3), (2, 5), 2),
    ("kernel_is_padded_input", 2, 3, 5, 5, 4, 7, 7, 1, 1, 1),
    # Strides above the kernel: the input gradient's phases without a
    # filter tap are zeros no GEMM writes (DgradGemm).
    ("stride_above_kernel", 2, 3, 9, 8, 4, 1, 2, (2, 3), (0, 1), 1),
    ("batch0", 0, 3, 8, 8, 4, 3, 3, 1, 1, 1),
    # One pixel, padding wider than the kernel (hypothesis found the CPU
    # packer mishandling its backward-stepping taps).
    ("one_pixel_wide_padding", 1, 1, 1, 1, 2, 1, 2, 1, (0, 2), 1),
    ("deep_wgrad", 8, 2, 40, 40, 3, 3, 3, 1, 1, 1),
    # The CUDA engine's tiles by rows (implicit_gemm.h, tile_rows_for): 96
    # rows, 90 (fprop, wgrad) in one partial tile, 170 and 150 in two, the
    # second partial, 96 in one whole tile with wgrad's depth in slices; 64
    # rows, 56 and 60 (48 rows: the LeNet-5 and AlexNet conv2 cases).
    ("tile96_rows", 2, 5, 9, 8, 90, 3, 3, 2, 1, 1),
    ("tile96_two_row_tiles", 3, 150, 6, 7, 170, 1, 1, 1, 0, 1),
    ("tile96_deep_wgrad", 4, 2, 40, 40, 96, 3, 3, 1, 1, 1),
    ("tile64_rows", 2, 60, 5, 6, 56, 1, 1, 1, 0, 1),
    # Batches of 8 images or more with few output channels take the CPU's
    # direct path (one image per vector lane): full and partial image groups.
    ("direct_lenet_conv1", 17, 1, 32, 32, 6, 5, 5, 1, 0, 1),
    ("direct_lenet_conv2", 16, 6, 14, 14, 16, 5, 5, 1, 0, 1),
    ("direct_grouped_strided", 19, 6, 11, 13, 9, 3, 4, (2, 3), (1, 2), 3),
    ("direct_wide_padding", 9, 2, 6, 7, 5, 3, 3, 1, (3, 1), 1),
]


def conv_inputs(case, device, dtype, bias=True):
    _, n, c, h, w, k, r, s, stride, padding, groups = case
    gen = torch.Generator().manual_seed(zlib.crc32(case[0].encode()))  # hash() varies per process
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(k, c // groups, r, s, generator=gen, dtype=torch.float64) / (c // groups * r * s) ** 0.5
    b = torch.randn(k, generator=gen, dtype=torch.float64) if bias else None
    move = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return move(x), move(weight), move(b), stride, padding, groups


def assert_matches(fn, reference, inputs):
    """Values and the gradient of every input against the reference, in float64."""
    out, grads = run_with_grads(fn, inputs)
    expected, expected_grads = run_with_grads(reference, inputs)
    assert out.shape == expected.shape
    assert_close(out, expected, torch.float64)
    for g, e in zip(grads, expected_grads):
        if e is not None:
            assert_close(g, e, torch.float64)


def run_with_grads(fn, inputs, grad_seed=0):
    leaves = [t.detach().requires_grad_() if t is not None else None for t in inputs]
    out = fn(*leaves)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    out.backward(grad.to(out))
    return out, [None if t is None else t.grad for t in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d_matches_torch(case, with_bias, activation, device):
    x, weight, bias, stride, padding, groups = conv_inputs(case, device, torch.float64, with_bias)
    fn = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, stride, padding, groups, activation)  # noqa: E731
    ref = lambda x_, w_, b_: reference_conv(x_, w_, b_, stride, padding, groups, activation)  # noqa: E731
    assert_matches(fn, ref, (x, weight, bias))


# (case, pool): the direct path's in-register pooling (full and partial
# image groups, odd maps whose last row or column no window covers,
# rectangular windows, strided and padded convolutions) and the unfused path.
POOL_CASES = [
    ("direct_lenet_conv1", 2),
    ("direct_lenet_conv2", 2),
    ("direct_grouped_strided", (2, 3)),
    ("direct_wide_padding", 3),
    ("seven_by_seven", 2),
    ("groups3_prime", (3, 2)),
]
CASE_BY_NAME = {case[0]: case for case in CONV_CASES}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name,pool", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_conv2d_avg_pool2d_matches_torch(name, pool, activation, device):
    x, weight, bias, stride, padding, groups = conv_inputs(CASE_BY_NAME[name], device, torch.float64)
    fn = lambda x_, w_, b_: cnnfast.conv2d_avg_pool2d(x_, w_, b_, stride, padding, groups, activation, pool)  # noqa: E731
    ref = lambda x_, w_, b_: F.avg_pool2d(reference_conv(x_, w_, b_, stride, padding, groups, activation), pool)  # noqa: E731
    assert_matches(fn, ref, (x, weight, bias))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv2d_avg_pool2d_equals_the_two_ops(device, dtype):
    """The fused op (LeNet-5's conv + tanh + pool, direct path) and the two
    ops in turn agree to rounding."""
    x, weight, bias, stride, padding, groups = conv_inputs(CASE_BY_NAME["direct_lenet_conv1"], device, dtype)
    fused = cnnfast.conv2d_avg_pool2d(x, weight, bias, stride, padding, groups, "tanh", 2)
    apart = cnnfast.avg_pool2d(cnnfast.conv2d(x, weight, bias, stride, padding, groups, "tanh"), 2)
    torch.testing.assert_close(fused, apart)


def test_conv2d_avg_pool2d_errors():
    x, w = torch.randn(16, 1, 6, 6), torch.randn(2, 1, 3, 3)
    with pytest.raises(RuntimeError, match="avg_pool2d"):  # a 4×4 map under a 5×5 window
        cnnfast.conv2d_avg_pool2d(x, w, pool=5)
    with pytest.raises(TypeError, match="pool must be an int or a pair of ints"):
        cnnfast.conv2d_avg_pool2d(x, w, pool=(2, 2, 2))
    with pytest.raises(RuntimeError, match="conv2d"):
        cnnfast.conv2d_avg_pool2d(x, torch.randn(2, 3, 3, 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layer", ["conv2d", "linear"])
def test_bias_grad_of_few_channels_over_many_elements(layer, device):
    """Few output channels over many images and pixels: the CUDA engine sums
    each channel's bias gradient in several slices (kernels/bias_grad.h),
    which here end in the middle of an image (conv2d) or of the batch."""
    gen = torch.Generator().manual_seed(4)
    if layer == "conv2d":
        x = torch.randn(7, 1, 50, 50, generator=gen, dtype=torch.float64)
        weight = torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64)
        ours = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, 1, 0, 1, "tanh")  # noqa: E731
        theirs = lambda x_, w_, b_: reference_conv(x_, w_, b_, 1, 0, 1, "tanh")  # noqa: E731
    else:
        x = torch.randn(9001, 3, generator=gen, dtype=torch.float64)
        weight = torch.randn(2, 3, generator=gen, dtype=torch.float64)
        ours = lambda x_, w_, b_: cnnfast.linear(x_, w_, b_, "tanh")  # noqa: E731
        theirs = lambda x_, w_, b_: reference_linear(x_, w_, b_, "tanh")  # noqa: E731
    bias = torch.randn(2, generator=gen, dtype=torch.float64)
    b_ours, b_ref = bias.to(device).clone().requires_grad_(), bias.clone().requires_grad_()
    out = ours(x.to(device), weight.to(device), b_ours)
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    out.backward(grad.to(device))
    theirs(x, weight, b_ref).backward(grad)
    assert_close(b_ours.grad.cpu(), b_ref.grad, torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_alexnet_conv1_float32_within_1e5(device):
    """float32 against the float64 reference on AlexNet's conv1: within 1e-5
    relative to the output's scale; the weight and bias gradients too."""
    n = slow_in_emulation(4, 1)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 227, 227, generator=gen, dtype=torch.float64)
    weight = torch.randn(96, 3, 11, 11, generator=gen, dtype=torch.float64) * 0.01
    bias = torch.randn(96, generator=gen, dtype=torch.float64)
    expected = reference_conv(x, weight, bias, 4, 0, 1, "relu")
    w32 = weight.float().to(device).requires_grad_()
    b32 = bias.float().to(device).requires_grad_()
    out = cnnfast.conv2d(x.float().to(device), w32, b32, 4, 0, 1, "relu")
    scale = expected.abs().max()
    assert ((out.double().cpu() - expected).abs().max() / scale) < 1e-5
    grad = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    out.backward(grad.float().to(device))
    w64, b64 = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    reference_conv(x, w64, b64, 4, 0, 1, "relu").backward(grad)
    for ours, ref in ((w32.grad, w64.grad), (b32.grad, b64.grad)):
        assert ((ours.double().cpu() - ref).abs().max() / ref.abs().max()) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_alexnet_conv3_float32_within_1e5(device):
    """float32 against float64 on AlexNet's conv3 (Winograd on the CUDA
    engine): output and input gradient within 1e-5 of their scale."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(slow_in_emulation(4, 1), 256, 13, 13, generator=gen, dtype=torch.float64)
    weight = torch.randn(384, 256, 3, 3, generator=gen, dtype=torch.float64) / 48
    bias = torch.randn(384, generator=gen, dtype=torch.float64)
    x64 = x.clone().requires_grad_()
    expected = reference_conv(x64, weight, bias, 1, 1, 1, "relu")
    x32 = x.float().to(device).requires_grad_()
    out = cnnfast.conv2d(x32, weight.float().to(device), bias.float().to(device), 1, 1, 1, "relu")
    grad = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    expected.backward(grad)
    out.backward(grad.float().to(device))
    for ours, reference in ((out, expected), (x32.grad, x64.grad)):
        assert_close_to_scale(ours, reference, 1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_conv2d_dtypes(device, dtype):
    skip_unsupported(device, dtype)
    case = ("dtypes", 2, 6, 10, 9, 8, 3, 3, 1, 1, 2)
    x, weight, bias, stride, padding, groups = conv_inputs(case, "cpu", torch.float64)
    xs, ws, bs = (t.to(dtype) for t in (x, weight, bias))  # rounded inputs, compared in float64
    expected = reference_conv(xs.double(), ws.double(), bs.double(), stride, padding, groups, "tanh")
    out = cnnfast.conv2d(xs.to(device), ws.to(device), bs.to(device), stride, padding, groups, "tanh")
    assert out.dtype == dtype
    assert_close(out.cpu(), expected, dtype)


# Stride-1 3×3 convolutions with at least 16 channels per group take
# Winograd's F(2×2, 3×3) on the CUDA engine (forward, and the input
# gradient where the padding is at most 2): odd and even output sizes
# (partial tiles), every padding the input gradient takes and one it does
# not, groups, both GEMM tiles (at most 64 output channels a group, and
# more), rectangular maps and padding.
WINOGRAD_CASES = [
    ("winograd_pad1_odd", 2, 16, 7, 9, 16, 3, 3, 1, 1, 1),
    ("winograd_pad0_even", 3, 24, 10, 8, 20, 3, 3, 1, 0, 1),
    ("winograd_pad2", 1, 16, 5, 6, 70, 3, 3, 1, 2, 1),
    ("winograd_pad3", 1, 16, 4, 5, 17, 3, 3, 1, 3, 1),
    ("winograd_groups_rect_pad", 2, 48, 6, 11, 96, 3, 3, 1, (0, 2), 3),
    ("winograd_one_pixel", 2, 32, 1, 1, 16, 3, 3, 1, 1, 2),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=[c[0] for c in WINOGRAD_CASES])
def test_conv2d_winograd_matches_torch(case, activation, device):
    x, weight, bias, stride, padding, groups = conv_inputs(case, device, torch.float64)
    fn = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, stride, padding, groups, activation)  # noqa: E731
    ref = lambda x_, w_, b_: reference_conv(x_, w_, b_, stride, padding, groups, activation)  # noqa: E731
    assert_matches(fn, ref, (x, weight, bias))


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_winograd_in_chunks_of_images(device, monkeypatch):
    """Under a 1 MiB workspace limit, Winograd runs 5 images of 16 channels
    at 30 × 30 in chunks (two images a chunk in float32, one in float64,
    the last chunk shorter): forward and gradients still match torch."""
    monkeypatch.setenv("CNNFAST_WINOGRAD_WORKSPACE_MB", "1")
    for dtype in (torch.float64, torch.float32):
        case = ("winograd_chunks", 5, 16, 30, 30, 16, 3, 3, 1, 1, 1)
        x, weight, bias, stride, padding, groups = conv_inputs(case, device, dtype)
        fn = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, stride, padding, groups, "relu")  # noqa: E731
        out, grads = run_with_grads(fn, (x, weight, bias))
        expected, expected_grads = run_with_grads(
            lambda x_, w_, b_: reference_conv(x_, w_, b_, stride, padding, groups, "relu"),
            (x.double(), weight.double(), bias.double()))
        for ours, reference in zip([out, *grads], [expected, *expected_grads]):
            assert_close_to_scale(ours, reference, 4 * TOLERANCE[dtype][0])


def tensors_allocated(fn, *args):
    """How many tensors fn(*args) allocates (aten::empty, as the profiler sees it)."""
    with torch.profiler.profile() as prof:
        fn(*args)
    return sum(event.name == "aten::empty" for event in prof.events())


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_takes_winograd_where_it_applies(device):
    """The CUDA engine (on a GPU, or emulated) runs stride-1 3×3 layers of at
    least 16 channels per group by Winograd: the output and three
    workspaces (U, V, M); any other layer its output, and the direct GEMM
    at most a workspace for its depth slices' partial sums."""
    if device == "cpu" and not EMULATING:
        pytest.skip("Winograd is the CUDA engine's")
    x = torch.randn(2, 32, 9, 9, device=device)
    conv = lambda x_, w_, stride=1, groups=1: cnnfast.conv2d(x_, w_, None, stride, 1, groups)  # noqa: E731
    assert tensors_allocated(conv, x, torch.randn(16, 32, 3, 3, device=device)) == 4
    assert tensors_allocated(conv, x, torch.randn(32, 16, 3, 3, device=device), 1, 2) == 4
    assert tensors_allocated(conv, x, torch.randn(16, 8, 3, 3, device=device), 1, 4) <= 2  # 8 a group
    assert tensors_allocated(conv, x, torch.randn(16, 32, 3, 3, device=device), 2) <= 2  # stride 2
    assert tensors_allocated(conv, x, torch.randn(16, 32, 5, 5, device=device)) <= 2  # 5×5
    # The input gradient (with two empty tensors for the gradients not
    # asked for): by Winograd where the padding is at most 2.
    w = torch.randn(16, 32, 3, 3, device=device)
    for padding, workspaces in ((1, 3), (2, 3), (3, 0)):
        out = ops.conv2d(x, w, None, [1, 1], [padding, padding], 1, None)
        args = (torch.randn_like(out), x, w, out, [1, 1], [padding, padding], 1, None, [True, False, False])
        assert tensors_allocated(ops._conv2d_backward, *args) == 3 + workspaces


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_winograd_switched_off(device, monkeypatch):
    """CNNFAST_WINOGRAD=0 runs a layer Winograd would take by the direct
    GEMM: its output alone is allocated, and it still matches torch."""
    if device == "cpu" and not EMULATING:
        pytest.skip("Winograd is the CUDA engine's")
    monkeypatch.setenv("CNNFAST_WINOGRAD", "0")
    x = torch.randn(2, 32, 9, 9, device=device, dtype=torch.float64)
    w = torch.randn(16, 32, 3, 3, device=device, dtype=torch.float64)
    conv = lambda x_, w_: cnnfast.conv2d(x_, w_, None, 1, 1)  # noqa: E731
    assert tensors_allocated(conv, x, w) == 1
    out = ops.conv2d(x, w, None, [1, 1], [1, 1], 1, None)
    args = (torch.randn_like(out), x, w, out, [1, 1], [1, 1], 1, None, [True, False, False])
    assert tensors_allocated(ops._conv2d_backward, *args) == 3
    assert_close(conv(x, w).cpu(), F.conv2d(x.cpu(), w.cpu(), padding=1), torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_conv2d_winograd_dtypes(device, dtype):
    """Winograd's transforms and GEMMs run in float for the 16-bit types
    (and float32): AlexNet's conv4 shape, output and input gradient within
    the type's tolerance of float64 on the same rounded inputs."""
    skip_unsupported(device, dtype)
    case = ("winograd_dtypes", 2, 64, 13, 13, 64, 3, 3, 1, 1, 2)
    x, weight, bias, stride, padding, groups = conv_inputs(case, "cpu", torch.float64)
    xs, ws, bs = (t.to(dtype) for t in (x, weight, bias))
    # Leaves of their own: for float64, .double() and .to("cpu") return xs
    # itself, and both gradients would land on one tensor.
    x64 = xs.double().clone().requires_grad_()
    expected = reference_conv(x64, ws.double(), bs.double(), stride, padding, groups, "tanh")
    x_in = xs.to(device).clone().requires_grad_()
    out = cnnfast.conv2d(x_in, ws.to(device), bs.to(device), stride, padding, groups, "tanh")
    assert out.dtype == dtype
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected.backward(grad)
    out.backward(grad.to(device=device, dtype=dtype))
    rtol, _ = TOLERANCE[dtype]
    for ours, reference in ((out, expected), (x_in.grad, x64.grad)):
        assert_close_to_scale(ours, reference, 4 * rtol)


STRIDED_CASES = [c for c in CONV_CASES if c[0] in ("seven_by_seven", "stride3", "stride4_rect")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", STRIDED_CASES, ids=[c[0] for c in STRIDED_CASES])
def test_conv2d_strided_float32(case, device):
    """Strided, padded convolutions in float32 (the CPU gathers their input
    with masked vector gathers, edges included), against float64 on the
    same rounded inputs."""
    x, weight, bias, stride, padding, groups = conv_inputs(case, "cpu", torch.float64)
    xs, ws, bs = (t.float() for t in (x, weight, bias))
    expected = reference_conv(xs.double(), ws.double(), bs.double(), stride, padding, groups, "relu")
    out = cnnfast.conv2d(xs.to(device), ws.to(device), bs.to(device), stride, padding, groups, "relu")
    assert_close_to_scale(out, expected, TOLERANCE[torch.float32][0])


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_layouts(device):
    """Non-contiguous and channels_last inputs give the contiguous result."""
    case = ("layouts", 2, 8, 11, 12, 6, 3, 3, 1, 1, 2)
    x, weight, bias, stride, padding, groups = conv_inputs(case, device, torch.float64)
    expected = reference_conv(x, weight, bias, stride, padding, groups, "relu")
    variants = [
        x.to(memory_format=torch.channels_last),
        x.transpose(2, 3).contiguous().transpose(2, 3),
        torch.stack([x, x], dim=2).flatten(1, 2)[:, ::2],
    ]
    for variant in variants:
        assert torch.equal(variant, x)
        out = cnnfast.conv2d(variant, weight.to(memory_format=torch.channels_last), bias, stride, padding, groups, "relu")
        assert_close(out, expected, torch.float64)
    unbatched = cnnfast.conv2d(x[0], weight, bias, stride, padding, groups, "relu")
    assert unbatched.shape == expected.shape[1:]
    assert_close(unbatched, expected[0], torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_is_deterministic(device):
    case = ("deterministic", 4, 3, 30, 30, 5, 3, 3, 1, 1, 1)
    inputs = conv_inputs(case, device, torch.float32)[:3]
    fn = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, 1, 1, 1, "relu")  # noqa: E731
    first = run_with_grads(fn, inputs)
    second = run_with_grads(fn, inputs)
    for a, b in zip([first[0], *first[1]], [second[0], *second[1]]):
        assert torch.equal(a, b)


# ---- linear ---------------------------------------------------------------------

LINEAR_CASES = [
    ("lenet_fc1", (16, 400), 120),
    ("lenet_fc3", (16, 84), 10),
    ("alexnet_fc6_slice", (2, 1152), 512),
    ("three_d", (2, 3, 17), 9),
    ("one_d", (17,), 5),
    ("batch0", (0, 7), 3),
    # the CPU's narrow path (features fit one vector, more than 8 rows):
    # an odd row count, rows wider than one register block, several chunks.
    ("narrow", (37, 19), 7),
    ("narrow_wide", (21, 300), 8),
    ("narrow_chunks", (1100, 5), 3),
    # 90 rows: the CUDA engine's 96-row tile (forward, input gradient).
    ("tile96_batch", (90, 33), 20),
    # The CUDA engine's weight gradient on the 96-row tile (90 features) and
    # the 64-row one (56), both with a forward (the weight read along the
    # depth) on the 64-row tile.
    ("tile96_features", (60, 70), 90),
    ("tile64_features", (50, 40), 56),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("case", LINEAR_CASES, ids=[c[0] for c in LINEAR_CASES])
def test_linear_matches_torch(case, with_bias, activation, device):
    _, shape, out_features = case
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    weight = (torch.randn(out_features, shape[-1], generator=gen, dtype=torch.float64) / shape[-1] ** 0.5).to(device)
    bias = torch.randn(out_features, generator=gen, dtype=torch.float64).to(device) if with_bias else None
    assert_matches(lambda *a: cnnfast.linear(*a, activation), lambda *a: reference_linear(*a, activation),
                   (x, weight, bias))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_float32_lenet_fc3(activation, device):
    """LeNet-5's fc3 at batch 256 in float32 (the CPU's narrow path: ten
    features in one vector), output and gradients, about as close to the
    float64 result as torch's own float32 linear: within 4 times its error
    (the CUDA kernels sum the bias gradient's 256 rows by a tree, the CPU
    path in blocks: on an AMD EPYC its error on that sum is about 4 times
    torch's, on an Intel Xeon below it)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(256, 84, generator=gen, dtype=torch.float64)
    weight = torch.randn(10, 84, generator=gen, dtype=torch.float64) / 84**0.5
    bias = torch.randn(10, generator=gen, dtype=torch.float64)
    inputs32 = [t.float().to(device) for t in (x, weight, bias)]
    reference = lambda *a: reference_linear(*a, activation)  # noqa: E731
    ours = run_with_grads(lambda *a: cnnfast.linear(*a, activation), inputs32)
    theirs = run_with_grads(reference, inputs32)
    exact = run_with_grads(reference, [t.double() for t in inputs32])
    for a, b, e in zip([ours[0], *ours[1]], [theirs[0], *theirs[1]], [exact[0], *exact[1]]):
        our_error = (a.double() - e.to(a.device)).abs().max().item()
        torch_error = (b.double() - e.to(b.device)).abs().max().item()
        assert our_error <= 4 * torch_error + 1e-6, (our_error, torch_error)


@pytest.mark.parametrize("device", DEVICES)
def test_linear_noncontiguous(device):
    x = torch.randn(9, 6, dtype=torch.float64, device=device).t()  # (6, 9), transposed
    weight = torch.randn(4, 9, dtype=torch.float64, device=device)
    assert_close(cnnfast.linear(x, weight, None, "relu"), F.relu(F.linear(x, weight)), torch.float64)


# ---- errors ---------------------------------------------------------------------


def test_conv2d_errors():
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(6, 2, 3, 3)
    cases = [
        (lambda: cnnfast.conv2d(x, torch.randn(6, 3, 3, 3)), RuntimeError, "expects 3 input channels, but x has 4"),
        (lambda: cnnfast.conv2d(x, w, groups=3), RuntimeError, "groups \\(3\\) must divide"),
        (lambda: cnnfast.conv2d(x, w, groups=4), RuntimeError, "groups \\(4\\) must divide"),
        (lambda: cnnfast.conv2d(x, torch.randn(6, 4, 9, 9)), RuntimeError, "larger than the padded input"),
        (lambda: cnnfast.conv2d(x, w, groups=2, activation="gelu"), RuntimeError, "activation must be None"),
        (lambda: cnnfast.conv2d(x, w, groups=2, activation=1), TypeError, "activation must be None"),
        (lambda: ops.conv2d(x, w, None, [1, 1], [0, 0], 2, "gelu"), RuntimeError, "activation must be None"),
        (lambda: cnnfast.conv2d(x, w.double(), groups=2), RuntimeError, "same dtype"),
        (lambda: cnnfast.conv2d(x, w, torch.randn(5), groups=2), RuntimeError, "bias must be a 1-D tensor of 6"),
        (lambda: cnnfast.conv2d(x, w, groups=2, stride=0), RuntimeError, "stride must be positive"),
        (lambda: cnnfast.conv2d(x, w, groups=2, padding=-1), RuntimeError, "padding must be non-negative"),
        (lambda: cnnfast.conv2d(x, w, groups=0), RuntimeError, "groups must be positive"),
        (lambda: cnnfast.conv2d(x[0, 0], w), RuntimeError, "3-D \\(C, H, W\\) or 4-D"),
        (lambda: cnnfast.conv2d(x.int(), w.int(), groups=2), RuntimeError, "must be float"),
        (lambda: cnnfast.conv2d(x, w, groups=2.0), TypeError, "groups must be an int"),
        (lambda: cnnfast.conv2d(x, w, stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
        # Planes of 2^31 pixels or more (the GEMM indexes a plane in 32 bits):
        # an expanded 46341 × 46341 image needs no memory; so do padding to
        # 46348 × 46348, and padding or a stride of 2^31.
        (lambda: cnnfast.conv2d(torch.zeros(1, 4, 1, 1).expand(1, 4, 46341, 46341), w, groups=2),
         RuntimeError, "fewer than 2\\^31 pixels"),
        (lambda: cnnfast.conv2d(x, w, groups=2, padding=2**31), RuntimeError, "fewer than 2\\^31 pixels"),
        (lambda: cnnfast.conv2d(x, w, groups=2, padding=23170), RuntimeError, "fewer than 2\\^31 pixels"),
        (lambda: cnnfast.conv2d(x, w, groups=2, stride=2**31), RuntimeError, "fewer than 2\\^31 pixels"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_linear_errors():
    x = torch.randn(3, 5)
    cases = [
        (lambda: cnnfast.linear(x, torch.randn(4, 6)), "x has 5 features in its last dimension but weight expects 6"),
        (lambda: cnnfast.linear(x, torch.randn(4, 5, 1)), "weight must be a 2-D"),
        (lambda: cnnfast.linear(x, torch.randn(4, 5), torch.randn(3)), "bias must be a 1-D tensor of 4"),
        (lambda: cnnfast.linear(x, torch.randn(4, 5, dtype=torch.float64)), "same dtype"),
    ]
    for call, message in cases:
        with pytest.raises(RuntimeError, match=message):
            call()
    with pytest.raises(RuntimeError, match="activation must be None"):
        cnnfast.linear(x, torch.randn(4, 5), activation="sigmoid")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for a second device")
def test_mismatched_devices():
    with pytest.raises(RuntimeError, match="same device"):
        cnnfast.conv2d(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3, device="cuda"))
    with pytest.raises(RuntimeError, match="same device"):
        cnnfast.linear(torch.randn(2, 3), torch.randn(4, 3, device="cuda"))


def test_backward_checks_its_arguments():
    x, w = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
    out = cnnfast.conv2d(x, w)
    with pytest.raises(RuntimeError, match="forward output's shape"):
        ops._conv2d_backward(out[:, :2], x, w, out, [1, 1], [0, 0], 1, None, [True, True, True])


# ---- contracts --------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    opts = dict(dtype=torch.float64, device=device, requires_grad=True)
    x = torch.randn(2, 4, 7, 6, **opts)
    w = torch.randn(6, 2, 3, 2, **opts)
    b = torch.randn(6, **opts)
    for activation in ACTIVATIONS:
        fn = lambda x_, w_, b_: cnnfast.conv2d(x_, w_, b_, (2, 1), (1, 0), 2, activation)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w, b))
        fused = lambda x_, w_, b_: cnnfast.conv2d_avg_pool2d(x_, w_, b_, 1, 1, 2, activation, (2, 3))  # noqa: E731
        assert torch.autograd.gradcheck(fused, (x, w, b))
    xl = torch.randn(3, 2, 5, **opts)
    wl = torch.randn(4, 5, **opts)
    bl = torch.randn(4, **opts)
    for activation in ACTIVATIONS:
        assert torch.autograd.gradcheck(lambda *a: cnnfast.linear(*a, activation), (xl, wl, bl))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    opts = dict(dtype=torch.float64, device=device)
    x = torch.randn(2, 4, 7, 6, **opts)
    w = torch.randn(6, 2, 3, 2, **opts)
    b = torch.randn(6, **opts)
    out = ops.conv2d(x, w, b, [2, 1], [1, 0], 2, "tanh")
    xl, wl = torch.randn(3, 2, 5, **opts), torch.randn(4, 5, **opts)
    out_l = ops.linear(xl, wl, None, "relu")
    cases = [
        (ops.conv2d, (x, w, b, [2, 1], [1, 0], 2, "tanh")),
        (ops.conv2d, (x.to(memory_format=torch.channels_last), w, None, [1, 1], [0, 0], 2, None)),
        (ops.conv2d, (x[0], w, b, [1, 1], [1, 1], 2, "relu")),
        (ops._conv2d_backward, (torch.randn_like(out), x, w, out, [2, 1], [1, 0], 2, "tanh", [True, True, True])),
        (ops._conv2d_backward, (torch.randn_like(out), x, w, out, [2, 1], [1, 0], 2, "tanh", [False, True, False])),
        (ops.conv2d_avg_pool2d, (x, w, b, [1, 1], [1, 1], 2, "tanh", [2, 3])),
        (ops.conv2d_avg_pool2d, (torch.randn(17, 2, 9, 9, **opts), torch.randn(3, 2, 3, 3, **opts), None,
                                 [1, 1], [0, 0], 1, "relu", [2, 2])),  # the direct path
        (ops.linear, (xl, wl, None, "relu")),
        (ops._linear_backward, (torch.randn_like(out_l), xl, wl, out_l, "relu", [True, True, True])),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    def net(x, w, b, wl):
        t = cnnfast.conv2d(x, w, b, 1, 1, 2, "relu")
        t = cnnfast.linear(t.flatten(1), wl, None, "tanh")
        return t + cnnfast.conv2d_avg_pool2d(x, w, b, 1, 1, 2, "tanh", 5).flatten(1).sum(1, keepdim=True)

    opts = dict(dtype=torch.float64, device=device, requires_grad=True)
    args = (torch.randn(2, 4, 5, 5, **opts), torch.randn(6, 2, 3, 3, **opts), torch.randn(6, **opts), torch.randn(3, 150, **opts))
    compiled = torch.compile(net, fullgraph=True)
    out = compiled(*args)
    expected = net(*args)
    assert_close(out, expected, torch.float64)
    grads = torch.autograd.grad(out.sum(), args)
    expected_grads = torch.autograd.grad(expected.sum(), args)
    for g, e in zip(grads, expected_grads):
        assert_close(g, e, torch.float64)


# ---- modules ----------------------------------------------------------------------


def test_conv2d_module_is_a_drop_in():
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2).double()
    ours = cnnfast.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2, activation="relu").double()
    assert ours.state_dict().keys() == reference.state_dict().keys()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    assert_close(ours(x), F.relu(reference(x)), torch.float64)
    assert "activation='relu'" in repr(ours)
    converted = cnnfast.nn.Conv2d.from_torch(reference, activation="tanh")
    assert_close(converted(x), torch.tanh(reference(x)), torch.float64)
    with pytest.raises(NotImplementedError, match="dilation"):
        cnnfast.nn.Conv2d(4, 6, 3, dilation=2)
    with pytest.raises(ValueError, match="activation"):
        cnnfast.nn.Conv2d(4, 6, 3, activation="gelu")


def test_linear_module_is_a_drop_in():
    torch.manual_seed(0)
    reference = torch.nn.Linear(7, 3).double()
    ours = cnnfast.nn.Linear(7, 3, activation="tanh").double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(4, 7, dtype=torch.float64)
    assert_close(ours(x), torch.tanh(reference(x)), torch.float64)
    plain = cnnfast.nn.Linear.from_torch(torch.nn.Linear(7, 3, bias=False).double())
    assert plain.bias is None
    assert plain(x).shape == (4, 3)


@pytest.mark.skipif(EMULATING, reason="the info table is checked once")
def test_gemm_kernels_are_listed():
    listed = {kernel["name"] for kernel in cnnfast.info()["cuda_kernels"]}
    assert {"ImplicitGemmKernel", "GemmSliceSumKernel", "BiasGradKernel", "BiasGradSliceSumKernel",
            "WinogradFilterKernel", "WinogradInputKernel", "WinogradOutputKernel"} <= listed

