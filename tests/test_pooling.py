"""max_pool2d and avg_pool2d against torch.nn.functional (float64 reference)."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast
from helpers import ALL_DTYPES, DEVICES, assert_close, skip_unsupported, slow_in_emulation

# (name, input shape, kernel, stride, padding, ceil_mode)
CASES = [
    ("lenet_s2", (16, 6, 28, 28), 2, 2, 0, False),
    ("lenet_s4", (16, 16, 10, 10), 2, None, 0, False),
    ("alexnet_pool1", slow_in_emulation((4, 96, 55, 55), (1, 8, 55, 55)), 3, 2, 0, False),
    ("alexnet_pool2", (2, 32, 27, 27), 3, 2, 0, False),
    ("alexnet_pool5", (2, 64, 13, 13), 3, 2, 0, False),
    ("prime_ceil_pad", (2, 3, 7, 11), 3, 2, 1, True),
    ("rect_kernel", (1, 2, 13, 17), (3, 5), (2, 3), (1, 2), False),
    ("rect_ceil", (3, 2, 10, 9), (2, 4), (3, 1), (1, 2), True),
    ("one_by_one", (2, 3, 1, 1), 1, 1, 0, False),
    ("kernel_equals_padded_input", (2, 2, 5, 5), 7, 1, 1, False),
    ("three_d", (4, 9, 9), 3, 2, 1, True),
    ("batch_zero", (0, 3, 8, 8), 2, 2, 0, False),
    ("big_window", (1, 2, 20, 20), 17, 3, 8, True),  # 289 cells: int32 offsets
    # 16 planes and more with short rows: the CPU pools planes side by side.
    ("many_planes_pad_ceil", (2, 9, 11, 7), 3, 2, 1, True),
    ("many_planes_rect", (1, 20, 9, 13), (3, 5), (2, 3), (1, 2), False),
    ("many_planes_big_window", (1, 17, 20, 20), 17, 3, 8, True),
    # 2x2 at stride 2 (the CPU's own float32 rows for average pooling): a
    # row and a column no window covers, rows of three vectors, and ceil
    # mode's partial windows (the generic path).
    ("2x2_odd_sizes", (2, 3, 7, 9), 2, 2, 0, False),
    ("2x2_wide_rows", (1, 2, 5, 70), 2, 2, 0, False),
    ("2x2_ceil_odd", (1, 3, 7, 9), 2, 2, 0, True),
    # Stride 2 with windows up to 4 wide (the CUDA backward's stride
    # blocks): padding of a whole block, windows narrower than the stride
    # (cells no window covers), rectangular windows in ceil mode, one row.
    ("s2_k4_pad2_ceil", (2, 3, 9, 10), 4, 2, 2, True),
    ("s2_k4_pad1", (2, 3, 8, 11), 4, 2, 1, False),
    ("s2_k1", (1, 2, 7, 8), 1, 2, 0, False),
    ("s2_rect_pad_ceil", (1, 2, 6, 9), (3, 4), 2, (1, 2), True),
    ("s2_one_row", (2, 2, 1, 9), (1, 3), 2, 0, False),
    # A plane too tall for one band of the CUDA backward (three bands of up
    # to 26 block rows), padded and in ceil mode.
    ("s2_bands_tall_plane", (1, 2, 150, 61), 3, 2, 1, True),
    # Small planes, several to a band (the last band fewer), padded and in
    # ceil mode, and at 2 × 2.
    ("s2_bands_of_small_planes", (1, 1201, 6, 5), 3, 2, 1, True),
    ("s2_bands_of_tiny_planes", (1, 2999, 3, 4), 2, 2, 0, False),
    # Rows too wide for a band: the CUDA backward's thread per stride block.
    ("rows_wider_than_a_band", (1, 2, 5, 2100), 2, 2, 0, False),
]
IDS = [case[0] for case in CASES]


def reference(op, x, kernel, stride, padding, ceil_mode, count_include_pad=True):
    # On the CPU: torch's CUDA avg_pool2d backward is wrong for channels_last
    # inputs with padding in the torch 2.11 of a lent GPU machine
    # (pytorch/pytorch#188344).
    x64 = x.detach().cpu().double().requires_grad_()
    if op == "max":
        return x64, F.max_pool2d(x64, kernel, stride, padding, ceil_mode=ceil_mode)
    return x64, F.avg_pool2d(x64, kernel, stride, padding, ceil_mode, count_include_pad)


def run(op, x, kernel, stride, padding, ceil_mode, count_include_pad=True):
    if op == "max":
        return cnnfast.max_pool2d(x, kernel, stride, padding, ceil_mode)
    return cnnfast.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)


def check_against_torch(op, x, kernel, stride, padding, ceil_mode, count_include_pad=True):
    dtype = x.dtype
    x = x.detach().requires_grad_()
    out = run(op, x, kernel, stride, padding, ceil_mode, count_include_pad)
    x64, ref = reference(op, x, kernel, stride, padding, ceil_mode, count_include_pad)
    assert out.shape == ref.shape and out.dtype == dtype and out.device == x.device
    assert_close(out.cpu(), ref, dtype)
    grad = torch.randn(ref.shape, dtype=torch.float64, device=x.device).to(dtype)
    (grad_x,) = torch.autograd.grad(out, x, grad)
    (grad_ref,) = torch.autograd.grad(ref, x64, grad.cpu().double())
    assert grad_x.shape == x.shape and grad_x.dtype == dtype and grad_x.device == x.device
    assert_close(grad_x.cpu(), grad_ref, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("name,shape,kernel,stride,padding,ceil_mode", CASES, ids=IDS)
def test_matches_torch(device, dtype, op, name, shape, kernel, stride, padding, ceil_mode):
    skip_unsupported(device, dtype)
    x = torch.randn(shape, device=device).to(dtype)
    check_against_torch(op, x, kernel, stride, padding, ceil_mode)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_divisor_rules(device, ceil_mode, count_include_pad):
    # 18 planes: the CPU's side-by-side path as well as the row path.
    x = torch.randn(2, 9, 11, 8, dtype=torch.float64, device=device)
    for kernel, stride, padding in [(3, 2, 1), ((4, 2), (3, 2), (2, 1)), (5, 4, 2), (2, 1, 0)]:
        check_against_torch("avg", x, kernel, stride, padding, ceil_mode, count_include_pad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_any_strides(device, op, layout):
    base = torch.randn(2, 6, 15, 17, dtype=torch.float64, device=device)
    x = {
        "channels_last": base.to(memory_format=torch.channels_last),
        "transposed": base.transpose(2, 3),
        "sliced": base[:, ::2, 1:, ::3],
    }[layout]
    assert not x.is_contiguous()
    check_against_torch(op, x, 3, 2, 1, True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("planes", [2, 17])  # one at a time; 16 side by side and one more
def test_max_nan_and_inf(device, planes):
    x = torch.randn(1, planes, 7, 7, dtype=torch.float64, device=device)
    for p in {0, planes - 1}:
        x[0, p, 1, 1] = float("nan")  # NaN wins its windows
        x[0, p, 4, 4] = float("nan")
        x[0, p, 4, 5] = float("nan")  # two NaNs in one window: the last one takes the gradient
    x[0, 1, :3, :3] = float("-inf")  # a window of -inf only
    x[0, 1, 5, 5] = float("inf")
    out = cnnfast.max_pool2d(x, 3, 2)
    ref = F.max_pool2d(x, 3, 2)
    torch.testing.assert_close(out, ref, equal_nan=True)
    assert out[0, 0, 0, 0].isnan() and out[0, 1, 0, 0] == float("-inf")
    check_against_torch("max", x, 3, 2, 0, False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_max_ties_take_torch_argmax(device, dtype):
    skip_unsupported(device, dtype)
    # Few distinct values: most windows hold several maxima.
    x = torch.randint(0, 3, (2, 12, 13, 13), device=device).to(dtype)
    x = x.requires_grad_()
    out = cnnfast.max_pool2d(x, 3, 2, 1)
    ref_x = x.detach().double().requires_grad_()
    ref = F.max_pool2d(ref_x, 3, 2, 1)
    grad = torch.arange(ref.numel(), device=device, dtype=torch.float64).reshape(ref.shape)
    (g,) = torch.autograd.grad(out, x, grad.to(dtype))
    (g_ref,) = torch.autograd.grad(ref, ref_x, grad)
    assert torch.equal(out.double(), ref.detach())
    assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_offsets_are_one_byte_window_offsets(device):
    x = torch.randn(2, 3, 9, 9, device=device)
    out, offsets = torch.ops.cnnfast._max_pool2d_with_offsets(x, [3, 3], [2, 2], [1, 1], False)
    assert offsets.dtype == torch.uint8 and offsets.shape == out.shape
    assert int(offsets.max()) < 9
    _, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    # Offset (r, c) inside the window at (oh, ow) is torch's flat index.
    oh = torch.arange(out.shape[2], device=device).view(1, 1, -1, 1)
    ow = torch.arange(out.shape[3], device=device).view(1, 1, 1, -1)
    off = offsets.long()
    flat = (oh * 2 - 1 + off // 3) * 9 + (ow * 2 - 1 + off % 3)
    assert torch.equal(flat, indices)


BAD_INPUTS = [
    ("rank", lambda dev: (torch.randn(4, 4, device=dev), 2, None, 0), "input"),
    ("rank5", lambda dev: (torch.randn(1, 1, 1, 4, 4, device=dev), 2, None, 0), "input"),
    ("empty_channels", lambda dev: (torch.randn(1, 0, 4, 4, device=dev), 2, None, 0), "input"),
    ("window_too_big", lambda dev: (torch.randn(1, 1, 4, 4, device=dev), 7, None, 1), "too small"),
    ("padding_above_half", lambda dev: (torch.randn(1, 1, 8, 8, device=dev), 3, 1, 2), "padding"),
    ("stride_zero", lambda dev: (torch.randn(1, 1, 8, 8, device=dev), 3, 0, 0), "stride"),
    ("stride_negative", lambda dev: (torch.randn(1, 1, 8, 8, device=dev), 3, -1, 0), "stride"),
    ("kernel_zero", lambda dev: (torch.randn(1, 1, 8, 8, device=dev), 0, 1, 0), "kernel_size"),
    ("integer_dtype", lambda dev: (torch.ones(1, 1, 8, 8, dtype=torch.int64, device=dev), 2, None, 0), "x must be"),
    ("bool_dtype", lambda dev: (torch.ones(1, 1, 8, 8, dtype=torch.bool, device=dev), 2, None, 0), "x must be"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("name,make,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_like_torch(device, op, name, make, message):
    x, kernel, stride, padding = make(device)
    torch_fn = F.max_pool2d if op == "max" else F.avg_pool2d
    if not name.endswith("dtype"):  # torch pools some integer dtypes; cnnfast refuses them
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            torch_fn(x, kernel, stride, padding)
    with pytest.raises(RuntimeError, match=message) as error:
        run(op, x, kernel, stride, padding, False)
    assert f"cnnfast.{op}_pool2d" in str(error.value)


@pytest.mark.parametrize("value", [(1, 2, 3), "3", 2.0, None, (2, True)])
def test_bad_kernel_size_type(value):
    with pytest.raises(TypeError, match="kernel_size"):
        cnnfast.max_pool2d(torch.randn(1, 1, 8, 8), value)


def test_16bit_on_cpu_kernel_is_a_clear_error():
    if cnnfast.testing.emulating_cuda():
        pytest.skip("the emulated CUDA kernels take 16-bit dtypes")
    with pytest.raises(RuntimeError, match="float32 or float64"):
        cnnfast.max_pool2d(torch.randn(1, 1, 8, 8, dtype=torch.float16), 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_backward_inputs_on_different_devices():
    x = torch.randn(1, 2, 8, 8, device="cuda")
    out, offsets = torch.ops.cnnfast._max_pool2d_with_offsets(x, [2, 2], [2, 2], [0, 0], False)
    with pytest.raises(RuntimeError, match="same device"):
        torch.ops.cnnfast._max_pool2d_backward(out.cpu(), offsets, x.shape, [2, 2], [2, 2], [0, 0])


def test_backward_rejects_mismatched_offsets():
    x = torch.randn(1, 2, 8, 8)
    out, offsets = torch.ops.cnnfast._max_pool2d_with_offsets(x, [2, 2], [2, 2], [0, 0], False)
    with pytest.raises(RuntimeError, match="offsets must be"):
        torch.ops.cnnfast._max_pool2d_backward(out, offsets.int(), x.shape, [2, 2], [2, 2], [0, 0])
    with pytest.raises(RuntimeError, match="does not fit|does not pool"):
        torch.ops.cnnfast._max_pool2d_backward(out, offsets, (1, 2, 3, 3), [2, 2], [2, 2], [0, 0])


@pytest.mark.parametrize("device", DEVICES)
def test_modules_match_torch(device):
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64, device=device)
    pairs = [
        (cnnfast.nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (cnnfast.nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (cnnfast.nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    ]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours(x), theirs(x))
        assert repr(ours).split("(", 1)[1] == repr(theirs).split("(", 1)[1]
        twin = type(ours).from_torch(theirs)
        torch.testing.assert_close(twin(x), theirs(x))
    with pytest.raises(NotImplementedError, match="dilation"):
        cnnfast.nn.MaxPool2d(3, dilation=2)
    with pytest.raises(NotImplementedError, match="divisor_override"):
        cnnfast.nn.AvgPool2d(3, divisor_override=2)


@pytest.mark.large
def test_more_than_2_31_elements():
    # 2**31 + 2**20 floats (8.6 GB in, 2.2 GB out): 64-bit indexing end to end.
    x = torch.zeros(1, 1, 2**16 + 32, 2**15, dtype=torch.float32)
    x[0, 0, -1, -1] = 1.0
    out = cnnfast.max_pool2d(x, 2)
    assert out[0, 0, -1, -1] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_grid_stride_loop_reaches_every_output(device, op):
    # 2.3 M outputs and 9.2 M input cells: more than one launch grid
    # (8192 × 256 threads), so every emulated CUDA thread loops.
    x = torch.randn(1, 4, 1516, 1516, device=device)
    check_against_torch(op, x, 2, 2, 0, False)
