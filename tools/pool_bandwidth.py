"""Max pooling's kernels on their own: the bandwidth of AlexNet's first
3×3/2 pool (128×96×55×55, float32) forward and backward, counting only
the bytes each must move, against the device's limit and a copy.

    python3 tools/pool_bandwidth.py [--device cuda] [--batch 128] [--calls 50]

The bench times one forward+backward at a time, synchronized, so its
figure holds the host's dispatch and autograd work too; here each op runs
`calls` times back to back between two CUDA events (the wall clock on a
CPU) (make gpu-check's `pool-bandwidth` step)."""

import argparse

import torch
import torch.nn.functional as F

import cnnfast  # noqa: F401  (registers torch.ops.cnnfast)
from cnnfast.bench.limits import device_limits
from cnnfast.bench.timing import time_once

ops = torch.ops.cnnfast
KERNEL, STRIDE = [3, 3], [2, 2]


def per_call_ms(fn, calls, device):
    """The best of five runs of `calls` calls back to back, per call."""

    def back_to_back():
        for _ in range(calls):
            fn()

    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return min(time_once(back_to_back, device) for _ in range(5)) / calls


def rows(batch, device):
    """(name, call, bytes it must move) for a copy and each kernel."""
    x = torch.randn(batch, 96, 55, 55, device=device)
    out, offsets = ops._max_pool2d_with_offsets(x, KERNEL, STRIDE, [0, 0], False)
    grad = torch.randn_like(out)
    size_in, size_out = x.numel() * 4, out.numel() * 4
    offset_bytes = offsets.numel() * offsets.element_size()
    yield "copy (x.clone())", lambda: x.clone(), 2 * size_in
    yield "cnnfast forward", lambda: ops._max_pool2d_with_offsets(x, KERNEL, STRIDE, [0, 0], False), \
        size_in + size_out + offset_bytes
    yield "cnnfast backward", lambda: ops._max_pool2d_backward(grad, offsets, list(x.shape), KERNEL, STRIDE,
                                                                [0, 0]), \
        size_out + offset_bytes + size_in
    _, indices = F.max_pool2d(x, 3, 2, return_indices=True)
    index_bytes = indices.numel() * indices.element_size()
    yield "torch forward", lambda: F.max_pool2d(x, 3, 2, return_indices=True), size_in + size_out + index_bytes
    yield "torch backward", lambda: torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, KERNEL, STRIDE, [0, 0], [1, 1], False, indices), size_out + index_bytes + size_in


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    limits = device_limits(device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"max_pool2d 3×3/2 on {args.batch}×96×55×55 float32, {device_name}; {args.calls} calls back to back, "
          f"best of 5; limit {limits.gbps:.0f} GB/s ({limits.source})\n")
    print("| kernel | ms a call | MB moved | GB/s | share of limit | share of copy |")
    print("|---|--:|--:|--:|--:|--:|")
    copy_gbps = None
    for name, fn, moved in rows(args.batch, device):
        ms = per_call_ms(fn, args.calls, device)
        gbps = moved / ms / 1e6
        copy_gbps = copy_gbps or gbps
        print(f"| {name} | {ms:.4f} | {moved / 1e6:.1f} | {gbps:.0f} | {gbps / limits.gbps:.1%} | "
              f"{gbps / copy_gbps:.1%} |")


if __name__ == "__main__":
    main()
