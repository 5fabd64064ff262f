"""The tensor-core GEMM and its warp-level emulation (csrc/common/warp.h,
csrc/common/tensor_core.h, csrc/kernels/tensor_core_gemm.h), through the
cnnfast_testing ops: number formats bit for bit, the mma fragment maps, the
cp.async poison, and the GEMM itself on the CPU (the emulation) and, where
one is visible, on a GPU's tensor cores."""

import contextlib

import pytest
import torch

import cnnfast
from helpers import CUDA

pytest.importorskip("hypothesis")  # a GPU machine without network may lack it
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

T = torch.ops.cnnfast_testing
FORMATS = {torch.float32: "tf32", torch.float16: "half", torch.bfloat16: "bfloat16"}
GEMM_DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")]),
]


def _gpu_has_tensor_cores(device):
    if device == "cuda" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 and bfloat16 mma.sync need sm_80 or newer")


# ---- number formats -------------------------------------------------------------


def _edge_floats():
    values = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), 65504.0, 65519.99, 65520.0, 65536.0,
              2.0**-14, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-25 + 2.0**-40, 1 + 2.0**-11, 1 + 3 * 2.0**-11,
              1 + 2.0**-8, 1 + 3 * 2.0**-8, 1.0e-40, 3.4e38, -3.4e38, 2.0**-126, 2.0**-149]
    return torch.tensor(values, dtype=torch.float32)


def _random_floats(n=200_000):
    """Floats from random bit patterns: every exponent, subnormals, NaNs."""
    bits = torch.randint(-(2**31), 2**31 - 1, (n,), dtype=torch.int64).to(torch.int32)
    return torch.cat([bits.view(torch.float32), _edge_floats()])


def _same_bits(actual, expected):
    nan = expected.isnan()
    assert torch.equal(actual.isnan(), nan)
    assert torch.equal(actual[~nan].view(torch.int32), expected[~nan].view(torch.int32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_conversions_round_as_torch_bit_for_bit(dtype):
    x = _random_floats()
    _same_bits(T.round_operands(x, FORMATS[dtype]), x.to(dtype).float())


def _tf32_reference(x):
    """cvt.rna.tf32.f32 in float64 arithmetic: 11 significant bits (10
    stored) for normal numbers, a unit of 2^-136 below 2^-126, to nearest,
    ties away from zero."""
    d = x.double()
    _, exponent = torch.frexp(d.abs())
    unit = torch.maximum(torch.ldexp(torch.ones_like(d), exponent - 11), torch.full_like(d, 2.0**-136))
    rounded = torch.floor(d.abs() / unit + 0.5) * unit
    out = (torch.sign(d) * rounded).float()
    keep = ~torch.isfinite(d) | (d == 0)
    return torch.where(keep, x, out)


def test_tf32_rounds_to_nearest_ties_away():
    x = _random_floats()
    _same_bits(T.round_operands(x, "tf32"), _tf32_reference(x))
    # Ties go away from zero (truncation or ties-to-even would keep 1.0).
    tie = torch.tensor([1 + 2.0**-11, -(1 + 2.0**-11)])
    assert T.round_operands(tie, "tf32").tolist() == [1 + 2.0**-10, -(1 + 2.0**-10)]


# ---- fragment maps ---------------------------------------------------------------

TILES = {("m16n8k8", "a"): (16, 8), ("m16n8k8", "b"): (8, 8), ("m16n8k8", "c"): (16, 8),
         ("m16n8k16", "a"): (16, 16), ("m16n8k16", "b"): (16, 8), ("m16n8k16", "c"): (16, 8)}


@pytest.mark.parametrize("shape, operand", list(TILES))
def test_fragment_map_is_a_bijection_onto_its_tile(shape, operand):
    rows, cols = TILES[(shape, operand)]
    coords = T.fragment_map(shape, operand).reshape(-1, 2)
    assert coords.shape[0] == rows * cols
    assert bool(((coords[:, 0] >= 0) & (coords[:, 0] < rows) & (coords[:, 1] >= 0) & (coords[:, 1] < cols)).all())
    assert len({tuple(c) for c in coords.tolist()}) == rows * cols


# Spot checks read off the PTX ISA's fragment figures (groupID = lane / 4,
# threadID_in_group = lane % 4): (shape, operand, lane, element, row, col).
ISA_POINTS = [
    ("m16n8k8", "a", 5, 0, 1, 1), ("m16n8k8", "a", 5, 1, 9, 1), ("m16n8k8", "a", 5, 2, 1, 5),
    ("m16n8k8", "a", 31, 3, 15, 7), ("m16n8k8", "b", 6, 1, 6, 1), ("m16n8k8", "c", 7, 3, 9, 7),
    ("m16n8k16", "a", 5, 1, 1, 3), ("m16n8k16", "a", 5, 2, 9, 2), ("m16n8k16", "a", 5, 4, 1, 10),
    ("m16n8k16", "a", 31, 7, 15, 15), ("m16n8k16", "b", 6, 3, 13, 1), ("m16n8k16", "c", 30, 2, 15, 4),
]


@pytest.mark.parametrize("shape, operand, lane, element, row, col", ISA_POINTS)
def test_fragment_map_matches_the_isa(shape, operand, lane, element, row, col):
    assert T.fragment_map(shape, operand)[lane, element].tolist() == [row, col]


# ---- cp.async ---------------------------------------------------------------------


def test_cp_async_data_arrives_at_the_wait():
    src = torch.randn(512)
    assert torch.equal(T.cp_async_probe(src, True), src)


def test_cp_async_read_before_the_wait_is_poison():
    # A kernel that forgets cp.async.wait_group reads what the emulation
    # left there: NaN everywhere, which any comparison catches.
    assert bool(T.cp_async_probe(torch.randn(512), False).isnan().all())


# ---- the GEMM ---------------------------------------------------------------------

SHAPES = [(1, 1, 1), (32, 32, 16), (33, 17, 40), (5, 70, 9), (64, 96, 100), (256, 10, 84), (7, 120, 400)]


def _integers(shape, device, dtype):
    return torch.randint(-4, 5, shape, device=device).to(dtype)


@pytest.mark.parametrize("device", GEMM_DEVICES)
@pytest.mark.parametrize("dtype", list(FORMATS))
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_integer_valued_gemm_is_exact(device, dtype, m, n, k):
    _gpu_has_tensor_cores(device)
    a, b = _integers((m, k), device, dtype), _integers((n, k), device, dtype)
    out = T.tensor_core_gemm(a, b)
    assert out.dtype == torch.float32 and out.shape == (m, n)
    assert torch.equal(out.cpu(), (a.double() @ b.double().T).float().cpu())


def _operands_as_the_mma_reads_them(x):
    return T.round_operands(x.cpu(), "tf32") if x.dtype == torch.float32 else x.cpu().float()


def _accumulation_bound(a, b, k):
    """float32 accumulation of k exact products: k ulps of the sum of |terms|."""
    return 1.01 * k * 2.0**-24 * (a.abs().double() @ b.abs().double().T) + 1e-30


@pytest.mark.parametrize("device", GEMM_DEVICES)
@pytest.mark.parametrize("dtype", list(FORMATS))
@pytest.mark.parametrize("m, n, k", [(33, 17, 40), (64, 96, 100), (256, 10, 84)])
def test_random_gemm_matches_float64_on_rounded_operands(device, dtype, m, n, k):
    _gpu_has_tensor_cores(device)
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(n, k, device=device).to(dtype)
    ra, rb = _operands_as_the_mma_reads_them(a), _operands_as_the_mma_reads_them(b)
    reference = ra.double() @ rb.double().T
    error = (T.tensor_core_gemm(a, b).cpu().double() - reference).abs()
    assert bool((error <= _accumulation_bound(ra, rb, k)).all()), f"max error {error.max()}"


def test_tf32_operands_are_rounded_not_truncated():
    # The MMA reads a float's upper 19 bits only: had the kernel skipped
    # cvt.rna, its result would be the truncated operands' product, which
    # lies outside the bound the rounded ones meet.
    a, b = torch.randn(64, 96), torch.randn(32, 96)
    out = T.tensor_core_gemm(a, b).double()
    mask = -(1 << 13)
    ta = (a.view(torch.int32) & mask).view(torch.float32)
    tb = (b.view(torch.int32) & mask).view(torch.float32)
    truncated = ta.double() @ tb.double().T
    assert not bool(((out - truncated).abs() <= _accumulation_bound(ta, tb, 96)).all())


def test_a_planted_fragment_map_error_is_caught():
    # PlantedTf32AMap (csrc/testing/tensor_core.cpp) exchanges elements a1
    # and a2 of the m16n8k8 TF32 map -- still a bijection, so only a product
    # through it can tell; the kernel's ldmatrix addressing does not follow.
    a, b = _integers((32, 16), "cpu", torch.float32), _integers((32, 16), "cpu", torch.float32)
    exact = (a.double() @ b.double().T).float()
    assert torch.equal(T.tensor_core_gemm(a, b), exact)
    assert not torch.equal(T.tensor_core_gemm(a, b, planted="tf32_a_map"), exact)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(0, 90),
       dtype=st.sampled_from(list(FORMATS)))
def test_gemm_property_integer_inputs_exact(m, n, k, dtype):
    a, b = _integers((m, k), "cpu", dtype), _integers((n, k), "cpu", dtype)
    assert torch.equal(T.tensor_core_gemm(a, b), (a.double() @ b.double().T).float())


def test_gemm_refuses_mismatched_operands():
    with pytest.raises(RuntimeError, match="a \\(M × K\\) and b \\(N × K\\)"):
        T.tensor_core_gemm(torch.zeros(4, 8), torch.zeros(4, 9))
    with pytest.raises(RuntimeError, match="float32 \\(TF32\\), float16 or bfloat16"):
        T.tensor_core_gemm(torch.zeros(4, 8, dtype=torch.float64), torch.zeros(4, 8, dtype=torch.float64))


# ---- linear on the tensor cores ---------------------------------------------------------


def _linear_device(device):
    """The CUDA kernels' code: on the GPU, or under the CPU emulation."""
    if device == "cuda":
        _gpu_has_tensor_cores(device)
        return contextlib.nullcontext()
    return cnnfast.testing.emulate_cuda(True)


@contextlib.contextmanager
def _matmul_tf32(allowed):
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("device", GEMM_DEVICES)
def test_float32_linear_uses_tf32_only_where_torchs_matmul_would(device):
    x, w, b = torch.randn(48, 96, device=device), torch.randn(40, 96, device=device), torch.randn(40, device=device)
    rx, rw = _operands_as_the_mma_reads_them(x), _operands_as_the_mma_reads_them(w)
    tf32_reference = rx.double() @ rw.double().T + b.cpu().double()
    bound = _accumulation_bound(rx, rw, 96) + 2.0**-24 * tf32_reference.abs()
    exact = x.cpu().double() @ w.cpu().double().T + b.cpu().double()
    with _linear_device(device):
        with _matmul_tf32(False):  # torch's default: IEEE float32
            ieee = cnnfast.linear(x, w, b).cpu().double()
        with _matmul_tf32(True):
            tf32 = cnnfast.linear(x, w, b).cpu().double()
    torch.testing.assert_close(ieee, exact, rtol=1e-5, atol=1e-5)
    assert bool(((tf32 - tf32_reference).abs() <= bound).all())
    assert (tf32 - exact).abs().max() > 100 * (ieee - exact).abs().max()


@pytest.mark.parametrize("device", GEMM_DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_16_bit_linear_runs_on_tensor_cores_with_its_epilogue(device, dtype, activation):
    # Integer-valued operands: the products' sums are exact, so the result
    # is act(x·wᵀ + b) rounded once to the dtype, bit for bit (tanh: float's).
    x, w = _integers((3, 5, 40), device, dtype), _integers((24, 40), device, dtype)
    b = _integers((24,), device, dtype)
    with _linear_device(device):
        out = cnnfast.linear(x, w, b, activation)
    exact = x.double() @ w.double().T + b.double()
    exact = {None: exact, "relu": exact.relu(), "tanh": exact.tanh()}[activation]
    assert out.dtype == dtype and out.shape == (3, 5, 24)
    if activation == "tanh":  # float's tanh, then one rounding: within an ulp of the dtype
        ulp = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}[dtype]
        torch.testing.assert_close(out.cpu().double(), exact.cpu(), rtol=ulp, atol=0)
    else:
        assert torch.equal(out.cpu(), exact.float().to(dtype).cpu())
