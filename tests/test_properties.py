"""Property-based differential tests: hypothesis draws shapes and pooling
parameters, torch is the oracle, errors included."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("hypothesis")  # a GPU machine without network may lack it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnnfast
from helpers import EMULATING

EXAMPLES = 60 if EMULATING else 150
ARGUMENT_NAMES = ("kernel_size", "stride", "padding", "input", "x must be")


@st.composite
def pooling_problems(draw):
    rank = draw(st.sampled_from([3, 4]))
    # Up to 20 channels: the CPU kernel pools 16 planes side by side when rows are short.
    shape = [draw(st.integers(1, 20)), draw(st.integers(1, 12)), draw(st.integers(1, 12))]
    if rank == 4:
        shape.insert(0, draw(st.integers(0, 3)))
    pair = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))  # noqa: E731
    return dict(
        shape=shape,
        kernel=draw(pair(1, 6)),
        stride=draw(pair(1, 4)),
        padding=draw(pair(0, 3)),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
    )


def outcome(fn):
    try:
        return fn(), None
    except (RuntimeError, ValueError, IndexError) as error:
        return None, error


def check(op, problem):
    x = torch.randn(problem["shape"], dtype=torch.float64, requires_grad=True)
    args = (problem["kernel"], problem["stride"], problem["padding"], problem["ceil_mode"])
    if op == "max":
        ours = lambda: cnnfast.max_pool2d(x, *args)  # noqa: E731
        theirs = lambda: F.max_pool2d(x, *args[:3], ceil_mode=args[3])  # noqa: E731
    else:
        extra = problem["count_include_pad"]
        ours = lambda: cnnfast.avg_pool2d(x, *args, extra)  # noqa: E731
        theirs = lambda: F.avg_pool2d(x, *args, extra)  # noqa: E731
    expected, torch_error = outcome(theirs)
    actual, our_error = outcome(ours)
    if torch_error is not None:
        assert our_error is not None, f"torch raised {torch_error!r}; cnnfast returned {actual}"
        message = str(our_error)
        assert f"cnnfast.{op}_pool2d" in message and any(name in message for name in ARGUMENT_NAMES)
        return
    assert our_error is None, f"cnnfast raised {our_error!r} where torch did not"
    torch.testing.assert_close(actual, expected)
    if expected.numel():
        grad = torch.randn_like(expected)
        (g,) = torch.autograd.grad(actual, x, grad)
        (g_ref,) = torch.autograd.grad(expected, x, grad)
        torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("op", ["max", "avg"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=pooling_problems())
def test_pooling_matches_torch(op, problem):
    check(op, problem)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    shape=st.lists(st.integers(0, 7), min_size=1, max_size=4),
    scale=st.floats(0.01, 30),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_activations_match_torch(shape, scale, dtype):
    x = (scale * torch.randn(shape)).to(dtype)
    torch.testing.assert_close(cnnfast.relu(x), torch.relu(x))
    torch.testing.assert_close(cnnfast.tanh(x), torch.tanh(x), rtol=3e-7, atol=1e-7)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 5), st.integers(1, 5)),
    size=st.integers(1, 14),
    alpha=st.floats(1e-5, 2.0),
    beta=st.sampled_from([0.5, 0.75, 1.0]) | st.floats(0.1, 2.0),
    k=st.floats(0.5, 3.0),
)
def test_local_response_norm_matches_torch(shape, size, alpha, beta, k):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ours = cnnfast.local_response_norm(x, size, alpha, beta, k)
    theirs = F.local_response_norm(x, size, alpha, beta, k)
    torch.testing.assert_close(ours, theirs)
    grad = torch.randn_like(theirs)
    (g,) = torch.autograd.grad(ours, x, grad)
    (g_ref,) = torch.autograd.grad(theirs, x, grad)
    torch.testing.assert_close(g, g_ref)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(3, 9), st.integers(3, 9)),
    size=st.integers(1, 10),
    alpha=st.floats(1e-4, 1.0),
    beta=st.sampled_from([0.75, 0.5]) | st.floats(0.2, 1.5),
    k=st.floats(0.5, 3.0),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_fused_stage_matches_the_chain(shape, size, alpha, beta, k, kernel, stride):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ours = cnnfast.relu_lrn_max_pool2d(x, size, alpha, beta, k, kernel, stride)
    theirs = F.max_pool2d(F.local_response_norm(F.relu(x), size, alpha, beta, k), kernel, stride)
    torch.testing.assert_close(ours, theirs)
    grad = torch.randn_like(theirs)
    (g,) = torch.autograd.grad(ours, x, grad)
    (g_ref,) = torch.autograd.grad(theirs, x, grad)
    torch.testing.assert_close(g, g_ref)


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    pair = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))  # noqa: E731
    return dict(
        # Up to 20 images: 8 or more with few channels take the CPU's direct path.
        n=draw(st.sampled_from([0, 1, 2, 3, 9, 20])),
        c=groups * draw(st.integers(1, 4)),
        k=groups * draw(st.integers(1, 5)),
        groups=groups,
        size=draw(pair(1, 11)),
        kernel=draw(pair(1, 6)),
        stride=draw(pair(1, 4)),
        padding=draw(pair(0, 3)),
        bias=draw(st.booleans()),
        activation=draw(st.sampled_from([None, "relu", "tanh"])),
    )


def conv_tensors(p):
    """x, weight and bias (or None) of a drawn problem, in float64, needing gradients."""
    x = torch.randn(p["n"], p["c"], *p["size"], dtype=torch.float64, requires_grad=True)
    w = torch.randn(p["k"], p["c"] // p["groups"], *p["kernel"], dtype=torch.float64, requires_grad=True)
    b = torch.randn(p["k"], dtype=torch.float64, requires_grad=True) if p["bias"] else None
    return x, w, b


def torch_conv(p, x, w, b):
    out = F.conv2d(x, w, b, p["stride"], p["padding"], 1, p["groups"])
    return {None: out, "relu": F.relu(out), "tanh": torch.tanh(out)}[p["activation"]]


def assert_values_and_gradients(ours, expected, inputs):
    torch.testing.assert_close(ours, expected)
    leaves = [t for t in inputs if t is not None]
    grad = torch.randn_like(expected)
    for g, g_ref in zip(torch.autograd.grad(ours, leaves, grad), torch.autograd.grad(expected, leaves, grad)):
        torch.testing.assert_close(g, g_ref)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=conv_problems())
def test_conv2d_matches_torch(problem):
    """Values and all three gradients, or the same refusal as torch (a kernel
    larger than the padded input)."""
    p = problem
    x, w, b = conv_tensors(p)
    expected, error = outcome(lambda: torch_conv(p, x, w, b))
    if error is not None:
        with pytest.raises(RuntimeError, match="larger than the padded input"):
            cnnfast.conv2d(x, w, b, p["stride"], p["padding"], p["groups"], p["activation"])
        return
    ours = cnnfast.conv2d(x, w, b, p["stride"], p["padding"], p["groups"], p["activation"])
    assert_values_and_gradients(ours, expected, (x, w, b))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=conv_problems(), pool=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_conv2d_avg_pool2d_matches_torch(problem, pool):
    """The fused conv + pool: values and gradients of torch's two ops, or an
    error where torch raises (the kernel or the pool window too large)."""
    p = problem
    x, w, b = conv_tensors(p)

    def ours():
        return cnnfast.conv2d_avg_pool2d(x, w, b, p["stride"], p["padding"], p["groups"], p["activation"], pool)

    expected, error = outcome(lambda: F.avg_pool2d(torch_conv(p, x, w, b), pool))
    if error is not None:
        with pytest.raises(RuntimeError):
            ours()
        return
    assert_values_and_gradients(ours(), expected, (x, w, b))
