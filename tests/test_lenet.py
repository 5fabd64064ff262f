"""LeNet-5: the seed's state_dict, equal outputs and gradients, training
that matches plain PyTorch, and the train/eval commands."""

import pytest
import torch

from cnnfast import models
from cnnfast.cli import main
from cnnfast.train import evaluate, load_splits, shifted_inputs, train_lenet5
from helpers import ONCE, slow_in_emulation


def test_loads_the_reference_state_dict_and_matches_it():
    torch.manual_seed(0)
    reference = models.ReferenceLeNet5().double()
    ours = models.LeNet5().double()
    assert ours.state_dict().keys() == reference.state_dict().keys()
    assert all(ours.state_dict()[k].shape == v.shape for k, v in reference.state_dict().items())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(5, 1, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), reference(x))
    ours(x).square().sum().backward()
    reference(x).square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("batch", [5, 20])  # 20: the CPU's direct convolutions, pooled before the write
def test_inference_runs_the_network_as_one_op(batch, monkeypatch):
    """Without autograd the whole network is one op (lenet5_forward); the
    outputs are those of the layers one by one."""
    from cnnfast.models import lenet

    calls = []
    fused_op = lenet.ops.lenet5_forward
    monkeypatch.setattr(lenet.ops, "lenet5_forward", lambda *a: calls.append(a) or fused_op(*a))
    torch.manual_seed(0)
    reference = models.ReferenceLeNet5()
    ours = models.LeNet5()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(batch, 1, 32, 32)
    layered = ours(x)
    with torch.no_grad():
        fused = ours(x)
        expected = reference(x)
    assert layered.requires_grad and not fused.requires_grad
    assert len(calls) == 1  # none with autograd
    torch.testing.assert_close(fused, layered)
    torch.testing.assert_close(fused, expected)


def test_training_matches_plain_pytorch():
    """The same initialisation and batches: cnnfast's LeNet-5 ends where the
    plain-PyTorch one does."""
    steps = slow_in_emulation(200, 12)
    train_images, train_labels, test_images, test_labels = load_splits()
    results = []
    for model in (models.LeNet5(), models.ReferenceLeNet5()):
        torch.manual_seed(1)
        model.load_state_dict(models.ReferenceLeNet5().state_dict())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        generator = torch.Generator().manual_seed(2)
        for step in range(steps):
            index = torch.randint(0, train_images.shape[0], (64,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(shifted_inputs(train_images[index], generator)),
                                                     train_labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results.append(evaluate(model, test_images, test_labels)[0] / test_images.shape[0])
    assert abs(results[0] - results[1]) < 0.01, results
    if steps >= 200:
        assert results[0] > 0.9


@ONCE
def test_train_and_eval_commands(tmp_path, capsys):
    checkpoint = str(tmp_path / "lenet5.pt")
    assert main(["train", "lenet5", "--epochs", "1", "--no-progress", "--save", checkpoint]) == 0
    trained = capsys.readouterr().out
    assert "held-out accuracy after 1 epoch: " in trained
    assert main(["eval", "lenet5", "--checkpoint", checkpoint]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("accuracy: ") and "% (" in line and line.endswith("/2000)")
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    models.LeNet5().load_state_dict(state)  # loads unchanged
    models.ReferenceLeNet5().load_state_dict(state)


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    other = tmp_path / "other.pt"
    torch.save({"model": "alexnet", "state_dict": {}}, other)
    assert main(["eval", "lenet5", "--checkpoint", str(other)]) == 2
    assert "a checkpoint of AlexNet, not of LeNet-5" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["eval", "lenet5", "--checkpoint", str(garbage)]) == 2
    assert "garbage.pt: not a checkpoint of tensors and plain data" in capsys.readouterr().err


@ONCE
def test_resume_continues_training(tmp_path):
    checkpoint = str(tmp_path / "lenet5.pt")
    train_lenet5(epochs=1, save=checkpoint, progress=False, log=lambda *_: None)
    _, history = train_lenet5(epochs=2, resume=checkpoint, progress=False, log=lambda *_: None)
    assert [record["epoch"] for record in history] == [2]


@ONCE
def test_train_alexnet_command_on_synthetic_images(capsys):
    assert main(["train", "alexnet", "--synthetic", "--steps", "2", "--batch-size", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "AlexNet (two towers, split none)" in out and "epoch  1/1  loss" in out
    with pytest.raises(SystemExit) as exited:
        main(["train", "alexnet", "--no-progress"])
    assert exited.value.code == 2
    assert "cnnfast: --data/--synthetic: give an image folder" in capsys.readouterr().err
