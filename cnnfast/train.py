"""Training and evaluation of LeNet-5 on MNIST (`python -m cnnfast train
lenet5`, `python -m cnnfast eval lenet5`).

Without a data folder it uses the 8,000 embedded digits: the first 6,000
train, the last 2,000 are held out and never trained on. With a standard
MNIST folder it trains on `train-*` and tests on `t10k-*`.

Recipe: SGD with momentum 0.9 and weight decay 5e-4, batch 64, the
learning rate annealed along a cosine from 0.05, and each training digit
placed at a random offset of up to 2 pixels inside LeNet-5's 32×32 input
(the input is MNIST's 28×28 padded by 2, so this shifts it within its own
border).
"""

import math
import time

import torch

from .data import DataError, lenet_inputs, load_embedded, load_mnist_folder
from .data.mnist import MNIST_MEAN, MNIST_STD
from .models import LeNet5, ReferenceLeNet5

EMBEDDED_TRAIN = 6000  # the rest of the 8,000 embedded digits are held out
CHECKPOINT_MODEL = "lenet5"


def load_splits(folder=None):
    """(train images, train labels, test images, test labels), uint8 28×28."""
    if folder is None:
        images, labels = load_embedded()
        return images[:EMBEDDED_TRAIN], labels[:EMBEDDED_TRAIN], images[EMBEDDED_TRAIN:], labels[EMBEDDED_TRAIN:]
    train = load_mnist_folder(folder, "train")
    test = load_mnist_folder(folder, "t10k")
    return (*train, *test)


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


def _progress(total, description, enabled):
    """A tqdm bar when tqdm is installed and wanted; otherwise nothing."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=description, leave=False, unit="batch")
        except ImportError:
            pass
    return None


def save_checkpoint(path, model, optimizer, epoch, reference):
    torch.save(
        {"model": CHECKPOINT_MODEL, "reference": reference, "epoch": epoch,
         "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()},
        path,
    )


def load_checkpoint(path):
    """The checkpoint dict, checked to be a LeNet-5 one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such checkpoint") from None
    except Exception as error:  # a corrupt or foreign file
        raise DataError(f"{path}: not a cnnfast checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("model") != CHECKPOINT_MODEL:
        found = checkpoint.get("model") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise DataError(f"{path}: a checkpoint of {found!r}, not of {CHECKPOINT_MODEL!r}")
    return checkpoint


def _start_distributed(device):
    """Joins the process group torchrun describes (gloo on a CPU, NCCL on a
    GPU): (rank, world size)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def train_lenet5(data=None, epochs=20, batch_size=64, lr=0.05, device="cpu", save=None, resume=None,
                 reference=False, seed=0, progress=True, log=print, ddp=False):
    """Trains LeNet-5 (cnnfast's, or the plain-PyTorch reference) and returns
    its history: one dict per epoch with loss, train and test accuracy and
    seconds. With ddp (under torchrun), each process trains on its share of
    every epoch (a DistributedSampler) with DistributedDataParallel
    averaging the gradients; rank 0 evaluates, logs and saves."""
    train_images, train_labels, test_images, test_labels = load_splits(data)
    rank, world = _start_distributed(device) if ddp else (0, 1)
    if rank != 0:
        progress, log, save = False, (lambda *_: None), None
    torch.manual_seed(seed)
    model = (ReferenceLeNet5() if reference else LeNet5()).to(device)
    module = model  # what is saved and evaluated
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sampler = torch.utils.data.DistributedSampler(
        range(train_images.shape[0]), num_replicas=world, rank=rank, shuffle=True, seed=seed
    )
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    first_epoch = 0
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        module.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        first_epoch = checkpoint["epoch"]
    total_steps, done = epochs * steps_per_epoch, first_epoch * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min((done + step) / total_steps, 1.0)))
    )
    generator = torch.Generator().manual_seed(seed)
    history = []
    name = "reference LeNet-5 (torch.nn)" if reference else "LeNet-5 (cnnfast)"
    log(f"{name}: {train_images.shape[0]} training digits, {test_images.shape[0]} held out, "
        f"{epochs} epochs, batch {batch_size}, device {device}, {torch.get_num_threads()} threads"
        + (f", {world} processes" if ddp else ""))
    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        inputs = shifted_inputs(train_images[order], generator)
        targets = train_labels[order]
        total_loss, correct = 0.0, 0
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start : start + batch_size].to(device)
            y = targets[start : start + batch_size].to(device)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * x.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        test_correct, test_total = evaluate(module, test_images, test_labels, device)
        record = {"epoch": epoch + 1, "loss": total_loss / inputs.shape[0],
                  "train_accuracy": correct / inputs.shape[0],
                  "test_accuracy": test_correct / test_total, "seconds": seconds}
        history.append(record)
        log(f"epoch {epoch + 1:>2}/{epochs}  loss {record['loss']:.4f}  "
            f"train {record['train_accuracy']:.4f}  held-out {record['test_accuracy']:.4f}  {seconds:.1f} s")
        if save is not None:
            save_checkpoint(save, module, optimizer, epoch + 1, reference)
    return module, history


ALEXNET_CHECKPOINT_MODEL = "alexnet"


def train_alexnet(data=None, synthetic=False, epochs=1, steps=None, batch_size=32, lr=0.01, split="none",
                  devices=None, device="cpu", num_classes=None, save=None, seed=0, progress=True, log=print,
                  ddp=False):
    """Trains the two-tower AlexNet on an image folder (class per
    sub-folder, the paper's augmentation) or on synthetic images: SGD with
    momentum 0.9 and weight decay 5e-4 as in the paper. `steps` caps the
    batches per epoch. With ddp (under torchrun), as train_lenet5: each
    process takes its share of every epoch and DistributedDataParallel
    averages the gradients; rank 0 logs and saves. Returns the model and
    one dict per epoch."""
    from .data import ImageFolder, SyntheticImages
    from .models import AlexNet

    if (data is None) == (not synthetic):
        raise DataError("train alexnet: give an image folder (--data) or --synthetic, not both")
    if ddp and split == "devices":
        raise DataError("train alexnet: --ddp runs one model per process; use split none or streams with it")
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
        model = AlexNet(classes, split=split, devices=devices or [device, device])
        device = model.devices[0]
    else:
        model = AlexNet(classes, split=split).to(device)
    module = model  # what is saved
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=not synthetic,
                                                  seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    batches = min(len(loader), steps) if steps else len(loader)
    log(f"AlexNet (two towers, split {split}): {len(dataset)} images, {classes} classes, {epochs} epochs of "
        f"{batches} batches of {batch_size}, device {device}")
    history = []
    for epoch in range(epochs):
        model.train()
        sampler.set_epoch(epoch)
        started, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        bar = _progress(batches, f"epoch {epoch + 1}/{epochs}", progress)
        for step, (x, y) in enumerate(loader):
            if step == batches:
                break
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * x.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += x.shape[0]
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        record = {"epoch": epoch + 1, "loss": total_loss / seen, "train_accuracy": correct / seen,
                  "seconds": time.perf_counter() - started}
        history.append(record)
        log(f"epoch {epoch + 1:>2}/{epochs}  loss {record['loss']:.4f}  train {record['train_accuracy']:.4f}  "
            f"{record['seconds']:.1f} s")
        if save is not None:
            torch.save({"model": ALEXNET_CHECKPOINT_MODEL, "epoch": epoch + 1, "num_classes": classes,
                        "state_dict": module.state_dict()}, save)
    return module, history
