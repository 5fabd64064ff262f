"""Max pooling's kernels on their own: the bandwidth of AlexNet's first
3×3/2 pool (128×96×55×55, float32) forward and backward, counting only
the bytes each must move, against the data sheet and a device copy.

    python3 tools/pool_bandwidth.py [--batch 128] [--calls 50]

The bench times one forward+backward at a time, synchronized, so its
figure holds the host's dispatch and autograd work too; here each op runs
`calls` times back to back between two CUDA events (make gpu-check's
`pool-bandwidth` step)."""

import argparse

import torch
import torch.nn.functional as F

import cnnfast  # noqa: F401  (registers torch.ops.cnnfast)
from cnnfast.bench.limits import device_limits

ops = torch.ops.cnnfast
KERNEL, STRIDE = [3, 3], [2, 2]


def per_call_ms(fn, calls):
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(5):
        start.record()
        for _ in range(calls):
            fn()
        stop.record()
        stop.synchronize()
        best = min(best, start.elapsed_time(stop) / calls)
    return best


def rows(batch, calls):
    x = torch.randn(batch, 96, 55, 55, device="cuda")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    limits = device_limits(torch.device("cuda"))
    print(f"max_pool2d 3×3/2 on {args.batch}×96×55×55 float32, {torch.cuda.get_device_name()}; "
          f"{args.calls} calls back to back, best of 5; data sheet {limits.gbps:.0f} GB/s\n")
    print("| kernel | ms a call | MB moved | GB/s | share of data sheet | share of copy |")
    print("|---|--:|--:|--:|--:|--:|")
    copy_gbps = None
    for name, fn, moved in rows(args.batch, args.calls):
        ms = per_call_ms(fn, args.calls)
        gbps = moved / ms / 1e6
        copy_gbps = copy_gbps or gbps
        print(f"| {name} | {ms:.4f} | {moved / 1e6:.1f} | {gbps:.0f} | {gbps / limits.gbps:.1%} | "
              f"{gbps / copy_gbps:.1%} |")


if __name__ == "__main__":
    main()
