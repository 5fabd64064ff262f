"""`python -m cnnfast demo` (make demo): trains LeNet-5 on cnnfast's kernels
with the embedded digits, reports its held-out accuracy, then runs
`bench --quick` on the best device here and writes the table, JSON and
plot into one folder."""

import os

import torch

from . import bench, info
from .bench import report
from .train import percent, plural, train_lenet5


def run(output="demo-output", epochs=20, progress=True):
    built = info()
    device = "cuda" if built["cuda_available"] else "cpu"
    print(f"cnnfast {built['version']} on torch {built['torch']}; device {device}; CPU kernels {built['cpu_isa']}; "
          f"CUDA kernels compiled: {built['cuda_compiled']}; CPU threads {torch.get_num_threads()}")
    os.makedirs(output, exist_ok=True)

    print(f"\n## 1. LeNet-5 on the embedded MNIST digits ({plural(epochs, 'epoch')}, {device})")
    _, history = train_lenet5(epochs=epochs, device=device, save=os.path.join(output, "lenet5.pt"),
                              progress=progress)
    last = history[-1]
    print(f"held-out accuracy after {plural(last['epoch'], 'epoch')}: {percent(last['test_accuracy'])} "
          f"(2,000 digits never trained on); checkpoint {output}/lenet5.pt")

    print(f"\n## 2. bench --quick on {device}")
    results = bench.run(device, quick=True, progress=progress)
    table = report.markdown(results)
    print(table)
    with open(os.path.join(output, "bench.md"), "w") as out:
        out.write(table)
    report.write_json(results, os.path.join(output, "bench.json"))
    try:
        report.write_plot(results, os.path.join(output, "speedups.png"))
        print(f"wrote {output}/bench.md, {output}/bench.json and the plot {output}/speedups.png")
    except bench.BenchError as missing:
        print(f"wrote {output}/bench.md and {output}/bench.json; no plot: {missing}")
