"""python -m cnnfast {info,demo,bench,train,eval}"""

import argparse
import json
import sys

from .bench import BenchError
from .data import DataError


def _info(args):
    import cnnfast

    info = cnnfast.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "cuda_kernels":
            emulated = sum(k["emulated"] for k in value)
            print(f"{key}: {len(value)} ({emulated} run under the CPU emulation)")
            for kernel in value:
                print(f"  {kernel['name']}: {'emulated' if kernel['emulated'] else kernel['reason']}")
        else:
            print(f"{key}: {value}")


def _demo(args):
    from .demo import run

    run(output=args.output, epochs=args.epochs, progress=not args.no_progress)


def _bench(args):
    import torch

    from .bench import report, run, select

    if args.list:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        for case in select(device, args.quick, args.match):
            print(case.name)
        return
    if args.plot:
        report.require_matplotlib()  # before the run, not after it
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.device, getattr(torch, args.dtype), args.quick, args.match, not args.no_progress, args.tf32)
    print(report.markdown(results))
    if args.json:
        report.write_json(results, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        report.write_plot(results, args.plot)
        print(f"wrote {args.plot}")
    return any("error" in result for result in results["results"])


def _train(args):
    import torch.distributed as dist

    from .train import train_alexnet, train_lenet5

    if args.model == "alexnet":
        devices = args.devices.split(",") if args.devices else None
        train_alexnet(
            data=args.data, synthetic=args.synthetic, epochs=args.epochs or 1, steps=args.steps,
            batch_size=args.batch_size or 32, lr=args.lr or 0.01, split=args.split, devices=devices,
            device=args.device, save=args.save, progress=not args.no_progress, ddp=args.ddp,
        )
    else:
        _, history = train_lenet5(
            data=args.data, epochs=args.epochs or 20, batch_size=args.batch_size or 64, lr=args.lr or 0.05,
            device=args.device,
            save=args.save, resume=args.resume, reference=args.reference, progress=not args.no_progress,
            ddp=args.ddp,
        )
        rank = dist.get_rank() if args.ddp else 0
        if history and rank == 0:
            print(f"held-out accuracy after {history[-1]['epoch']} epochs: {history[-1]['test_accuracy']:.4f}")
    if args.ddp:
        dist.destroy_process_group()


def _eval(args):
    from .models import LeNet5, ReferenceLeNet5
    from .train import evaluate, load_checkpoint, load_splits

    checkpoint = load_checkpoint(args.checkpoint)
    model = ReferenceLeNet5() if checkpoint.get("reference") else LeNet5()
    model.load_state_dict(checkpoint["state_dict"])
    _, _, images, labels = load_splits(args.data)
    correct, total = evaluate(model.to(args.device), images, labels, args.device)
    print(f"accuracy: {correct / total:.4f} ({correct}/{total})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnfast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what was built, and what this machine runs")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)
    demo = commands.add_parser(
        "demo", help="train LeNet-5 on the embedded digits, then bench --quick with its plot"
    )
    demo.add_argument("--output", default="demo-output", help="folder for the plot, JSON and table")
    demo.add_argument("--epochs", type=int, default=20, help="LeNet-5's training epochs (default 20)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser("bench", help="cnnfast against PyTorch (cuDNN / oneDNN), case by case")
    bench.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    bench.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    bench.add_argument("--quick", action="store_true", help="a subset that takes under a minute on a CPU")
    bench.add_argument("--match", help="only the cases whose name this regular expression is found in")
    bench.add_argument("--list", action="store_true", help="list the cases, run nothing")
    bench.add_argument("--json", metavar="PATH", help="write the results as JSON")
    bench.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the speedups (needs matplotlib)")
    bench.add_argument("--threads", type=int, help="CPU threads for both sides (default: torch's)")
    bench.add_argument("--tf32", action="store_true", help="let the reference use TF32 on a GPU (default: off)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(run=_bench)

    train = commands.add_parser(
        "train", help="train LeNet-5 on MNIST (the embedded digits by default), or AlexNet on images"
    )
    train.add_argument("model", choices=["lenet5", "alexnet"])
    train.add_argument("--data", help="lenet5: a standard MNIST folder (train-* and t10k-* IDX files); "
                       "alexnet: a folder with one sub-folder of images per class")
    train.add_argument("--epochs", type=int, help="default: 20 (lenet5), 1 (alexnet)")
    train.add_argument("--batch-size", type=int, help="default: 64 (lenet5), 32 (alexnet)")
    train.add_argument("--lr", type=float, help="initial learning rate; default 0.05 (lenet5, cosine-annealed), "
                       "0.01 (alexnet)")
    train.add_argument("--device", default="cpu")
    train.add_argument("--synthetic", action="store_true", help="alexnet: random ImageNet-shaped images")
    train.add_argument("--steps", type=int, help="alexnet: at most this many batches per epoch")
    train.add_argument("--split", choices=["none", "streams", "devices"], default="none", help="alexnet's towers")
    train.add_argument("--devices", help="alexnet --split devices: the two towers' devices, e.g. cuda:0,cuda:1")
    train.add_argument("--save", help="write a checkpoint here after every epoch")
    train.add_argument("--resume", help="continue from this checkpoint")
    train.add_argument("--reference", action="store_true", help="train the plain-PyTorch LeNet-5 instead")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--ddp", action="store_true",
                       help="under torchrun: DistributedDataParallel (gloo on CPU, NCCL on GPU)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("eval", help="accuracy of a checkpoint on held-out digits")
    evaluate.add_argument("model", choices=["lenet5"])
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", help="a standard MNIST folder (its t10k-* files are used)")
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=_eval)

    args = parser.parse_args(argv)
    try:
        failed = args.run(args)
    except (DataError, BenchError) as error:
        print(f"cnnfast: {error}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
