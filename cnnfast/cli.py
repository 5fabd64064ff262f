"""python -m cnnfast {info,demo,bench,train,eval}

Every flag is checked before any work: a bad value exits with status 2 and
one line, `cnnfast: <flag>: <why>`. A user's mistake (a missing GPU, file
or folder, a wrong checkpoint, --ddp outside torchrun) is such a line too,
never a traceback."""

import argparse
import json
import math
import os
import sys

from .bench import BenchError
from .data import DataError
from .train import DEFAULTS, TrainingError, percent, plural


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as `cnnfast: <flag>: <why>`."""

    def error(self, message):
        if message.startswith("argument "):
            flag, _, why = message[len("argument "):].partition(": ")
            message = f"{flag.split('/')[-1]}: {why}"
        print(f"cnnfast: {message}", file=sys.stderr)
        sys.exit(2)


# ---- argument types: each raises ArgumentTypeError with the reason ------------


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def at_least(low):
    def check(text):
        value = _integer(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    check.__name__ = f"integer ≥ {low}"
    return check


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def device(text):
    """A torch device this machine has."""
    import torch

    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (cpu, cuda, cuda:1)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU is visible (use cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}")
    elif parsed.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: cnnfast runs on cpu or cuda")
    return text


def two_devices(text):
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"must name the two towers' devices, as cuda:0,cuda:1; got {text!r}")
    return [device(part.strip()) for part in parts]


def existing_file(text):
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: a folder, not a file")
    return text


def existing_folder(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def output_file(text):
    """A file that can be written: its folder exists and is writable."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: a folder; give a file name")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{text}: its folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: its folder {folder} is not writable")
    return text


def output_folder(text):
    """A folder that exists and is writable, or can be made."""
    path = os.path.abspath(text)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(f"{text}: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: {existing} is not writable")
    return text


# ---- the commands ----------------------------------------------------------------


def _info(args):
    import cnnfast

    info = cnnfast.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "cuda_kernels":
            print(f"{key}: {len(value)}, each also run on the CPU by the emulation (CNNFAST_EMULATE_CUDA=1)")
            for kernel in value:
                print(f"  {kernel['name']} ({kernel['header']})")
        else:
            print(f"{key}: {value}")


def _demo(args):
    from .demo import run

    run(output=args.output, epochs=args.epochs, progress=not args.no_progress)


def _bench(args):
    import torch

    from .bench import report, run, select

    if args.list:
        for case in select(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), args.quick, args.match):
            print(case.name)
        return
    if args.plot:
        report.require_matplotlib()  # before the run, not after it
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.device, getattr(torch, args.dtype), args.quick, args.match, not args.no_progress,
                  args.precision)
    print(report.markdown(results))
    if args.json:
        report.write_json(results, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        report.write_plot(results, args.plot)
        print(f"wrote {args.plot}")
    return any("error" in result for result in results["results"])


def _under_torchrun():
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _check_train_flags(parser, args):
    """What argparse cannot check flag by flag."""
    if args.ddp and not _under_torchrun():
        parser.error(f"--ddp: runs under torchrun; launch with: torchrun --nproc_per_node=2 -m cnnfast train "
                     f"{args.model} --ddp")
    lenet_only = [flag for flag, value in (("--resume", args.resume), ("--reference", args.reference)) if value]
    alexnet_only = [flag for flag, value in (("--synthetic", args.synthetic), ("--steps", args.steps),
                                             ("--devices", args.devices)) if value]
    if args.model == "alexnet" and lenet_only:
        parser.error(f"{lenet_only[0]}: only for lenet5")
    if args.model == "lenet5" and (alexnet_only or args.split != "none"):
        parser.error(f"{(alexnet_only or ['--split'])[0]}: only for alexnet")
    if args.model == "alexnet":
        if (args.data is None) == (not args.synthetic):
            parser.error("--data/--synthetic: give an image folder (--data DIR) or --synthetic, one of them")
        if args.devices and args.split != "devices":
            parser.error("--devices: only with --split devices")
        if args.split == "devices" and args.ddp:
            parser.error("--ddp: runs one model per process; use --split none or streams with it")


def _train(args):
    import torch.distributed as dist

    from .train import train_alexnet, train_lenet5

    settings = {key: default if getattr(args, key) is None else getattr(args, key)
                for key, default in DEFAULTS[args.model].items()}
    if args.model == "alexnet":
        train_alexnet(data=args.data, synthetic=args.synthetic, steps=args.steps, split=args.split,
                      devices=args.devices, device=args.device, save=args.save, progress=not args.no_progress,
                      ddp=args.ddp, **settings)
    else:
        _, history = train_lenet5(data=args.data, device=args.device, save=args.save, resume=args.resume,
                                  reference=args.reference, progress=not args.no_progress, ddp=args.ddp,
                                  **settings)
        if history and (not args.ddp or dist.get_rank() == 0):
            last = history[-1]
            print(f"held-out accuracy after {plural(last['epoch'], 'epoch')}: {percent(last['test_accuracy'])}")
    if args.ddp:
        dist.destroy_process_group()


def _eval(args):
    from .models import LeNet5, ReferenceLeNet5
    from .train import evaluate, load_checkpoint, load_state, load_test_split

    checkpoint = load_checkpoint(args.checkpoint)
    model = ReferenceLeNet5() if checkpoint.get("reference") else LeNet5()
    load_state(model, checkpoint["state_dict"], args.checkpoint)
    images, labels = load_test_split(args.data)
    correct, total = evaluate(model.to(args.device), images, labels, args.device)
    print(f"accuracy: {percent(correct / total)} ({correct}/{total})")


def _parser():
    parser = _Parser(prog="python -m cnnfast", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    info = commands.add_parser("info", help="what was built, and what this machine runs")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)

    lenet = DEFAULTS["lenet5"]
    demo = commands.add_parser(
        "demo", help="train LeNet-5 on the embedded digits, then bench --quick with its plot"
    )
    demo.add_argument("--output", type=output_folder, default="demo-output",
                      help="folder for the checkpoint, plot, JSON and table")
    demo.add_argument("--epochs", type=at_least(1), default=lenet["epochs"],
                      help=f"LeNet-5's training epochs (default {lenet['epochs']})")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser("bench", help="cnnfast against PyTorch (cuDNN / oneDNN), case by case")
    bench.add_argument("--device", type=device, help="cpu or cuda (default: cuda when available)")
    bench.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    bench.add_argument("--quick", action="store_true", help="a subset that takes under a minute on a CPU")
    bench.add_argument("--match", help="only the cases whose name this regular expression is found in")
    bench.add_argument("--list", action="store_true", help="list the cases, run nothing")
    bench.add_argument("--json", metavar="PATH", type=output_file, help="write the results as JSON")
    bench.add_argument("--plot", metavar="PATH", type=output_file,
                       help="write a PNG bar chart of the speedups (needs matplotlib)")
    bench.add_argument("--threads", type=at_least(1), help="CPU threads for both sides (default: torch's)")
    bench.add_argument("--precision", default="default", choices=["default", "strict"],
                       help="default: torch's own switches (TF32 convolutions on sm_80+ GPUs); "
                            "strict: IEEE float32 on both sides")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(run=_bench)

    alex = DEFAULTS["alexnet"]
    train = commands.add_parser(
        "train", help="train LeNet-5 on MNIST (the embedded digits by default), or AlexNet on images"
    )
    train.add_argument("model", choices=["lenet5", "alexnet"])
    train.add_argument("--data", type=existing_folder,
                       help="lenet5: a standard MNIST folder (train-* and t10k-* IDX files); "
                       "alexnet: a folder with one sub-folder of images per class")
    train.add_argument("--epochs", type=at_least(1),
                       help=f"default: {lenet['epochs']} (lenet5), {alex['epochs']} (alexnet)")
    train.add_argument("--batch-size", type=at_least(1),
                       help=f"batch per process; default: {lenet['batch_size']} (lenet5), "
                       f"{alex['batch_size']} (alexnet)")
    train.add_argument("--lr", type=positive_float, help=f"initial learning rate; default {lenet['lr']} "
                       f"(lenet5, cosine-annealed), {alex['lr']} (alexnet)")
    train.add_argument("--device", type=device, default="cpu", help="cpu (default) or cuda[:N]")
    train.add_argument("--synthetic", action="store_true", help="alexnet: random ImageNet-shaped images")
    train.add_argument("--steps", type=at_least(1), help="alexnet: at most this many batches per epoch")
    train.add_argument("--split", choices=["none", "streams", "devices"], default="none", help="alexnet's towers")
    train.add_argument("--devices", type=two_devices,
                       help="alexnet --split devices: the two towers' devices, e.g. cuda:0,cuda:1")
    train.add_argument("--save", type=output_file, help="write a checkpoint here after every epoch")
    train.add_argument("--resume", type=existing_file, help="lenet5: continue from this checkpoint")
    train.add_argument("--reference", action="store_true", help="lenet5: train the plain-PyTorch model instead")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--ddp", action="store_true",
                       help="under torchrun: DistributedDataParallel (gloo on CPU, NCCL on GPU)")
    train.set_defaults(run=_train, check=_check_train_flags)

    evaluate = commands.add_parser("eval", help="accuracy of a checkpoint on held-out digits")
    evaluate.add_argument("model", choices=["lenet5"])
    evaluate.add_argument("--checkpoint", type=existing_file, required=True)
    evaluate.add_argument("--data", type=existing_folder,
                          help="a standard MNIST folder (its t10k-* files are read)")
    evaluate.add_argument("--device", type=device, default="cpu")
    evaluate.set_defaults(run=_eval)
    return parser, commands


def main(argv=None):
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "check"):
        args.check(commands.choices[args.command], args)
    try:
        failed = args.run(args)
    except (DataError, BenchError, TrainingError) as error:
        print(f"cnnfast: {error}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
