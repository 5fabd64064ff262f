"""DistributedDataParallel over cnnfast's ops: two CPU processes (gloo)
take one step on halves of a batch and end with the parameters of one
process stepping on the whole batch."""


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import cnnfast
from cnnfast.models import LeNet5

pytestmark = pytest.mark.skipif(
    cnnfast.testing.emulating_cuda() or not dist.is_available(), reason="checked once, on the CPU kernels"
)
BATCH = 16  # per process


def one_step(model, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()


def worker(rank, world, init_file, state, x, y, result):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = LeNet5()
    model.load_state_dict(state)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    part = slice(rank * BATCH, (rank + 1) * BATCH)
    one_step(ddp, x[part], y[part])
    if rank == 0:
        torch.save(model.state_dict(), result)
    dist.destroy_process_group()


def test_two_processes_equal_one_on_the_combined_batch(tmp_path):
    torch.manual_seed(0)
    state = LeNet5().state_dict()
    x, y = torch.randn(2 * BATCH, 1, 32, 32), torch.randint(0, 10, (2 * BATCH,))
    result = str(tmp_path / "rank0.pt")
    mp.spawn(worker, args=(2, str(tmp_path / "init"), state, x, y, result), nprocs=2, join=True)
    single = LeNet5()
    single.load_state_dict(state)
    one_step(single, x, y)
    distributed = torch.load(result, weights_only=True)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_trainer_runs_under_a_process_group(tmp_path, monkeypatch):
    from cnnfast.train import train_lenet5

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        model, history = train_lenet5(epochs=1, ddp=True, progress=False, log=lambda *_: None)
    finally:
        dist.destroy_process_group()
    assert isinstance(model, LeNet5) and history[0]["test_accuracy"] > 0.5


def test_alexnet_trainer_runs_under_a_process_group(tmp_path):
    from cnnfast.models import AlexNet
    from cnnfast.train import TrainingError, train_alexnet

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        model, history = train_alexnet(synthetic=True, steps=1, batch_size=2, num_classes=10, ddp=True,
                                       save=str(tmp_path / "alexnet.pt"), progress=False, log=lambda *_: None)
        with pytest.raises(TrainingError, match="--ddp runs one model per process"):
            train_alexnet(synthetic=True, steps=1, split="devices", ddp=True, progress=False)
    finally:
        dist.destroy_process_group()
    assert isinstance(model, AlexNet) and len(history) == 1 and history[0]["loss"] > 0
    saved = torch.load(tmp_path / "alexnet.pt", weights_only=True)["state_dict"]
    assert set(saved) == set(model.state_dict())  # the module's keys, not DDP's "module." ones
