"""One forward and backward of the slowest GPU cases, for Nsight Compute:

    ncu --clock-control none --kernel-name-base demangled --kernel-name regex:cnnfast \\
        --section SpeedOfLight ... python3 tools/gpu_profile.py

AlexNet's conv2 (the implicit GEMM's fprop, dgrad and wgrad) and conv3
(Winograd's transforms and batched GEMM, forward and input gradient), its
first max pool, LRN and fused stage, at batch 128 in float32, and LeNet-5's
inference kernel at batch 1024 (forward only) (make gpu-check's `profile`
step). A warm-up pass runs first, outside the profiled range."""

import torch

import cnnfast

LRN = (5, 5e-4, 0.75, 2.0)


def cases(device):
    x = torch.randn(128, 96, 27, 27, device=device, requires_grad=True)
    weight = torch.randn(256, 48, 5, 5, device=device, requires_grad=True)
    bias = torch.randn(256, device=device, requires_grad=True)
    yield "conv2", lambda: cnnfast.conv2d(x, weight, bias, padding=2, groups=2, activation="relu")
    x3 = torch.randn(128, 256, 13, 13, device=device, requires_grad=True)
    weight3 = torch.randn(384, 256, 3, 3, device=device, requires_grad=True)
    yield "conv3", lambda: cnnfast.conv2d(x3, weight3, None, padding=1, activation="relu")
    pooled = torch.randn(128, 96, 55, 55, device=device, requires_grad=True)
    yield "max_pool2d", lambda: cnnfast.max_pool2d(pooled, 3, 2)
    yield "local_response_norm", lambda: cnnfast.local_response_norm(pooled, *LRN)
    yield "relu_lrn_max_pool2d", lambda: cnnfast.relu_lrn_max_pool2d(pooled, *LRN, 3, 2)
    digits = torch.randn(1024, 1, 32, 32, device=device)
    lenet = cnnfast.models.LeNet5().to(device)
    yield "lenet5_forward", lambda: cnnfast.lenet5_forward(digits, *(p.detach() for p in lenet.parameters()))


def main():
    device = torch.device("cuda")
    for profiled in (False, True):
        if profiled:
            torch.cuda.cudart().cudaProfilerStart()
        for name, run in cases(device):
            out = run()
            if out.requires_grad:
                out.backward(torch.randn_like(out))
            torch.cuda.synchronize()
            if profiled:
                print(f"profiled {name}", flush=True)
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == "__main__":
    main()
