"""Training and evaluation (`python -m cnnfast train`, `python -m cnnfast
eval`): LeNet-5 on MNIST and the two-tower AlexNet on images, through one
training loop (train_epochs) with the model-specific parts beside it.

LeNet-5: without a data folder it uses the 8,000 embedded digits: the first
6,000 train, the last 2,000 are held out and never trained on. With a
standard MNIST folder it trains on `train-*` and tests on `t10k-*`. Recipe:
SGD with momentum 0.9 and weight decay 5e-4, batch 64, the learning rate
annealed along a cosine from 0.05, and each training digit placed at a
random offset of up to 2 pixels inside LeNet-5's 32×32 input (the input is
MNIST's 28×28 padded by 2, so this shifts it within its own border).

AlexNet: an image folder (one sub-folder per class, the paper's
augmentation) or synthetic images; the paper's SGD (momentum 0.9, weight
decay 5e-4).
"""

import math
import os
import time

import torch

from .data import DataError, lenet_inputs, load_embedded, load_mnist_folder
from .data.mnist import MNIST_MEAN, MNIST_STD
from .models import LeNet5, ReferenceLeNet5

# Each model's defaults, for the functions below and the command line.
DEFAULTS = {
    "lenet5": {"epochs": 20, "batch_size": 64, "lr": 0.05},
    "alexnet": {"epochs": 1, "batch_size": 32, "lr": 0.01},
}
EMBEDDED_TRAIN = 6000  # the rest of the 8,000 embedded digits are held out
CHECKPOINT_MODELS = {"lenet5": "LeNet-5", "alexnet": "AlexNet"}


class TrainingError(Exception):
    """A training or evaluation that cannot run as asked; the message says
    why, for the command line to print without a traceback."""


PLURALS = {"batch": "batches", "class": "classes", "process": "processes"}


def plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {PLURALS.get(word, word + 's')}"


def percent(fraction):
    """Accuracies, everywhere: a percentage with two decimals."""
    return f"{100 * fraction:.2f}%"


# ---- LeNet-5's data ------------------------------------------------------------


def load_test_split(folder=None):
    """(images, labels) held out for testing: the last 2,000 embedded
    digits, or a folder's t10k-* files."""
    if folder is None:
        images, labels = load_embedded()
        return images[EMBEDDED_TRAIN:], labels[EMBEDDED_TRAIN:]
    return load_mnist_folder(folder, "t10k")


def load_splits(folder=None):
    """(train images, train labels, test images, test labels), uint8 28×28."""
    if folder is None:
        images, labels = load_embedded()
        return images[:EMBEDDED_TRAIN], labels[:EMBEDDED_TRAIN], images[EMBEDDED_TRAIN:], labels[EMBEDDED_TRAIN:]
    return (*load_mnist_folder(folder, "train"), *load_test_split(folder))


def shifted_inputs(images, generator):
    """LeNet-5 inputs with each digit at a random offset in [0, 4]² of the
    32×32 frame (offset 2 is the centred, unaugmented input)."""
    n = images.shape[0]
    frame = torch.zeros(n, 32, 32)
    offsets = torch.randint(0, 5, (n, 2), generator=generator)
    digits = images.float().div_(255.0)
    for dy in range(5):
        for dx in range(5):
            chosen = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().flatten()
            if chosen.numel():
                frame[chosen, dy : dy + 28, dx : dx + 28] = digits[chosen]
    return ((frame - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def evaluate(model, images, labels, device="cpu", batch_size=1000):
    """(correct, total) of the model's predictions on these digits."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = lenet_inputs(images[start : start + batch_size]).to(device)
            predicted = model(x).argmax(1).cpu()
            correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct, images.shape[0]


# ---- checkpoints ----------------------------------------------------------------


def save_checkpoint(path, model_name, module, epoch, **extra):
    torch.save({"model": model_name, "epoch": epoch, "state_dict": module.state_dict(), **extra}, path)


def _is_state_dict(value):
    return isinstance(value, dict) and value and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def load_checkpoint(path, model_name="lenet5"):
    """The checkpoint dict ({"model", "epoch", "state_dict", ...}) of a
    `train --save` file; a bare state_dict (torch.save(model.state_dict()))
    is taken as {"state_dict": it}."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a checkpoint file") from None
    except Exception as error:  # a corrupt file, or one holding more than tensors and plain data
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a checkpoint of tensors and plain data, as train --save writes "
                        f"({first_line})") from None
    expected = CHECKPOINT_MODELS[model_name]
    if _is_state_dict(checkpoint):
        return {"state_dict": checkpoint}
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path}: not a {expected} checkpoint (no state_dict in it)")
    if checkpoint.get("model", model_name) != model_name:
        found = CHECKPOINT_MODELS.get(checkpoint["model"], repr(checkpoint["model"]))
        raise DataError(f"{path}: a checkpoint of {found}, not of {expected}")
    return checkpoint


def load_state(module, state_dict, path):
    """module.load_state_dict(state_dict), with a mismatch reported as the
    file and its first differing key or shape."""
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state_dict:
            raise DataError(f"{path}: the checkpoint lacks {key!r} (a {type(module).__name__} has it)")
        found = state_dict[key]
        if not isinstance(found, torch.Tensor) or found.shape != value.shape:
            shape = tuple(found.shape) if isinstance(found, torch.Tensor) else type(found).__name__
            raise DataError(f"{path}: {key!r} has shape {shape} in the checkpoint, "
                            f"{tuple(value.shape)} in a {type(module).__name__}")
    for key in state_dict:
        if key not in expected:
            raise DataError(f"{path}: the checkpoint has {key!r}, which a {type(module).__name__} lacks")
    module.load_state_dict(state_dict)


# ---- the training loop ------------------------------------------------------------


def _progress(total, description, enabled):
    """A tqdm bar when tqdm is installed and wanted; otherwise nothing."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=description, leave=False, unit="batch")
        except ImportError:
            pass
    return None


def _start_distributed(device):
    """Joins the process group torchrun describes (gloo on a CPU, NCCL on a
    GPU): (rank, world size)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if not all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        raise TrainingError("--ddp runs under torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR and "
                            "MASTER_PORT; launch with: torchrun --nproc_per_node=2 -m cnnfast train ... --ddp")
    dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def train_epochs(model, optimizer, epochs, batches, device, first_epoch=0, schedule=None, test=None,
                 on_epoch_end=None, progress=True, log=print):
    """The training loop: for each epoch, `batches(epoch)` gives (count,
    iterable of (x, y)); each batch is a cross-entropy SGD step (then
    `schedule.step()`). After each epoch `test()` gives the held-out
    accuracy, if given, and `on_epoch_end(epoch)` runs (a checkpoint).
    Returns one dict per epoch: epoch, loss, train_accuracy, [test_accuracy,]
    seconds."""
    history = []
    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        model.train()
        count, data = batches(epoch)
        total_loss, correct, seen = 0.0, 0, 0
        bar = _progress(count, f"epoch {epoch + 1}/{epochs}", progress)
        for x, y in data:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total_loss += float(loss.detach()) * x.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += x.shape[0]
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1),
                  "train_accuracy": correct / max(seen, 1), "seconds": time.perf_counter() - started}
        line = (f"epoch {epoch + 1:>2}/{epochs}  loss {record['loss']:.4f}  "
                f"train {percent(record['train_accuracy'])}")
        if test is not None:
            record["test_accuracy"] = test()
            line += f"  held-out {percent(record['test_accuracy'])}"
        history.append(record)
        log(f"{line}  {record['seconds']:.1f} s")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return history


def _header(name, device, batch_size, world):
    """What runs where, and the batch per process and in all."""
    batch = f"batch {batch_size}" if world == 1 else (
        f"batch {batch_size} per process, {batch_size * world} in all ({plural(world, 'process')})")
    threads = plural(torch.get_num_threads(), "CPU thread") + (" a process" if world > 1 else "")
    return f"{name}: {batch}, device {device}, {threads}"


def train_lenet5(data=None, epochs=DEFAULTS["lenet5"]["epochs"], batch_size=DEFAULTS["lenet5"]["batch_size"],
                 lr=DEFAULTS["lenet5"]["lr"], device="cpu", save=None, resume=None, reference=False, seed=0,
                 progress=True, log=print, ddp=False):
    """Trains LeNet-5 (cnnfast's, or the plain-PyTorch reference) and returns
    (model, history): one dict per epoch with loss, train and test accuracy
    and seconds. With ddp (under torchrun), each process trains on its share
    of every epoch (a DistributedSampler) with DistributedDataParallel
    averaging the gradients; rank 0 evaluates, logs and saves."""
    train_images, train_labels, test_images, test_labels = load_splits(data)
    rank, world = _start_distributed(device) if ddp else (0, 1)
    if rank != 0:
        progress, log, save = False, (lambda *_: None), None
    torch.manual_seed(seed)
    module = (ReferenceLeNet5() if reference else LeNet5()).to(device)
    model = torch.nn.parallel.DistributedDataParallel(module) if ddp else module
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sampler = torch.utils.data.DistributedSampler(
        range(train_images.shape[0]), num_replicas=world, rank=rank, shuffle=True, seed=seed
    )
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    first_epoch = 0
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        if "optimizer" not in checkpoint or "epoch" not in checkpoint:
            raise DataError(f"{resume}: a bare state_dict; --resume needs a checkpoint written by train --save")
        load_state(module, checkpoint["state_dict"], resume)
        optimizer.load_state_dict(checkpoint["optimizer"])
        first_epoch = checkpoint["epoch"]
        if first_epoch >= epochs:
            raise TrainingError(f"--epochs {epochs}: {resume} has already trained {plural(first_epoch, 'epoch')}")
    total_steps, done = epochs * steps_per_epoch, first_epoch * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min((done + step) / total_steps, 1.0)))
    )
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        inputs, targets = shifted_inputs(train_images[order], generator), train_labels[order]
        return steps_per_epoch, ((inputs[i : i + batch_size], targets[i : i + batch_size])
                                 for i in range(0, inputs.shape[0], batch_size))

    def test():
        correct, total = evaluate(module, test_images, test_labels, device)
        return correct / total

    def checkpoint(epoch):
        if save is not None:
            save_checkpoint(save, "lenet5", module, epoch, reference=reference, optimizer=optimizer.state_dict())

    name = "reference LeNet-5 (torch.nn)" if reference else "LeNet-5 (cnnfast)"
    log(f"{_header(name, device, batch_size, world)}; {train_images.shape[0]:,} training digits, "
        f"{test_images.shape[0]:,} held out; {plural(epochs - first_epoch, 'epoch')}"
        + (f" (from epoch {first_epoch + 1})" if first_epoch else ""))
    history = train_epochs(model, optimizer, epochs, batches, device, first_epoch, schedule, test, checkpoint,
                           progress, log)
    if save is not None:
        log(f"saved the checkpoint to {save}")
    return module, history


def train_alexnet(data=None, synthetic=False, epochs=DEFAULTS["alexnet"]["epochs"], steps=None,
                  batch_size=DEFAULTS["alexnet"]["batch_size"], lr=DEFAULTS["alexnet"]["lr"], split="none",
                  devices=None, device="cpu", num_classes=None, save=None, seed=0, progress=True, log=print,
                  ddp=False):
    """Trains the two-tower AlexNet on an image folder (class per
    sub-folder, the paper's augmentation) or on synthetic images. `steps`
    caps the batches per epoch. With ddp (under torchrun), as train_lenet5:
    each process takes its share of every epoch and DistributedDataParallel
    averages the gradients; rank 0 logs and saves. Returns (model, history)."""
    from .data import ImageFolder, SyntheticImages
    from .models import AlexNet

    if (data is None) == (not synthetic):
        raise TrainingError("train alexnet: give an image folder (--data) or --synthetic, not both")
    if ddp and split == "devices":
        raise TrainingError("--ddp runs one model per process; use --split none or streams with it")
    rank, world = _start_distributed(device) if ddp else (0, 1)
    if rank != 0:
        progress, log, save = False, (lambda *_: None), None
    generator = torch.Generator().manual_seed(seed)
    if synthetic:
        dataset = SyntheticImages(length=(steps or 8) * batch_size, num_classes=num_classes or 1000, seed=seed)
        classes = dataset.num_classes
    else:
        dataset = ImageFolder(data, train=True, generator=generator)
        classes = num_classes or len(dataset.classes)
    torch.manual_seed(seed)
    if split == "devices":
        module = AlexNet(classes, split=split, devices=devices or [device, device])
        device = module.devices[0]
    else:
        module = AlexNet(classes, split=split).to(device)
    model = torch.nn.parallel.DistributedDataParallel(module) if ddp else module
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=not synthetic,
                                                  seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    count = min(len(loader), steps) if steps else len(loader)

    def batches(epoch):
        sampler.set_epoch(epoch)
        return count, (batch for _, batch in zip(range(count), loader))

    def checkpoint(epoch):
        if save is not None:
            save_checkpoint(save, "alexnet", module, epoch, num_classes=classes)

    log(f"{_header(f'AlexNet (two towers, split {split})', device, batch_size, world)}; "
        f"{len(dataset):,} images, {plural(classes, 'class')}; {plural(epochs, 'epoch')} of "
        f"{plural(count, 'batch')}")
    history = train_epochs(model, optimizer, epochs, batches, device, on_epoch_end=checkpoint,
                           progress=progress, log=log)
    if save is not None:
        log(f"saved the checkpoint to {save}")
    return module, history
