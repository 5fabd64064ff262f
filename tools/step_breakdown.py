"""Where a training step of AlexNet spends its time, kernel by kernel: a
few profiled steps of cnnfast's two-tower AlexNet and of the same network
in torch (cuDNN on a GPU), each kernel's time per step, largest first —
the split behind the benchmark's one ratio (make gpu-check's `breakdown`
step). On a CPU, where there are no kernels to list, the ops' own times.

    python tools/step_breakdown.py [--device cuda] [--batch 128] [--steps 5] [--rows 25]
"""

import argparse
import re

import torch
from torch.profiler import ProfilerActivity, profile

from cnnfast.bench.cases import _models, _training_step
from cnnfast.models import AlexNet, ReferenceAlexNet

ARGUMENTS = re.compile(r"\((?:[^()]|\([^()]*\))*\)$")


def short_name(name):
    """A kernel's name without its return type, parameter list and
    namespaces: cnnfast's launch wrappers then show the kernel functor with
    its template arguments (which GEMM view, which tile), and the library
    kernels keep their own names."""
    name = ARGUMENTS.sub("", name.removeprefix("void ")).strip()
    name = re.sub(r"\b(cnnfast|kernels|at::native|at|c10)::", "", name)
    name = re.sub(r"^run_(block_)?kernel<(.*)>$", r"\2", name).strip()
    return name if len(name) <= 100 else name[:97] + "..."


def _is_device_event(event):
    return str(event.device_type).endswith("CUDA")


def _device_time_us(event):
    total = getattr(event, "self_device_time_total", None)
    return total if total is not None else event.self_cuda_time_total


def breakdown(step, steps, cuda):
    """(name, calls per step, ms per step) of each kernel (CUDA) or op (CPU)
    over `steps` profiled runs of step(), largest first."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    rows = {}
    for event in prof.key_averages():
        if cuda and _is_device_event(event):
            name, micros = short_name(event.key), _device_time_us(event)
        elif not cuda and "::" in event.key:
            name, micros = event.key, event.self_cpu_time_total
        else:
            continue
        calls, total = rows.get(name, (0, 0.0))
        rows[name] = (calls + event.count, total + micros)
    return sorted(((name, calls / steps, micros / steps / 1000) for name, (calls, micros) in rows.items()),
                  key=lambda row: -row[2])


def table(title, rows, limit, what):
    total = sum(ms for _, _, ms in rows)
    lines = [f"### {title}: {total:.3f} ms a step", "",
             f"| {what} | calls a step | ms a step | share |", "|---|--:|--:|--:|"]
    for name, calls, ms in rows[:limit]:
        lines.append(f"| `{name}` | {calls:g} | {ms:.3f} | {100 * ms / total:.1f}% |")
    if len(rows) > limit:
        rest = sum(ms for _, _, ms in rows[limit:])
        lines.append(f"| {len(rows) - limit} more | | {rest:.3f} | {100 * rest / total:.1f}% |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--split", default="none", choices=["none", "streams"])
    args = parser.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    reference, ours = _models(ReferenceAlexNet, lambda: AlexNet(split=args.split), args.device, torch.float32)
    x = torch.randn(args.batch, 3, 227, 227, device=args.device)
    labels = torch.randint(0, 1000, (args.batch,), device=args.device)
    print(f"AlexNet training step, batch {args.batch}, float32, {args.device}"
          f" ({torch.cuda.get_device_name() if cuda else 'CPU'}), {args.steps} profiled steps\n")
    for title, model in ((f"cnnfast (split={args.split})", ours), ("torch", reference)):
        step = _training_step(model, x, labels)
        for _ in range(args.warmup):
            step()
        print(table(title, breakdown(step, args.steps, cuda), args.rows, "kernel" if cuda else "op"))
        print()


if __name__ == "__main__":
    main()
