"""The command line as a new user meets it: every flag checked before any
work (exit 2, `cnnfast: <flag>: <why>`), no traceback for a user's mistake,
one accuracy format, plurals right; and the models' own input checks."""

import gzip
import os
import struct
import subprocess
import sys
import time

import pytest
import torch

import cnnfast
from cnnfast.data import load_embedded
from helpers import ONCE

pytestmark = ONCE
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cnnfast_command(*args, cwd=None, env=None):
    """(exit code, stdout, stderr) of python -m cnnfast ARGS."""
    result = subprocess.run([sys.executable, "-m", "cnnfast", *args], capture_output=True, text=True, cwd=cwd,
                            env={**os.environ, "PYTHONPATH": ROOT, **(env or {})}, timeout=600)
    return result.returncode, result.stdout, result.stderr


def assert_refused(args, message, env=None):
    started = time.perf_counter()
    code, out, err = cnnfast_command(*args, env=env)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnfast: "), err
    assert message in lines[0], lines[0]
    assert "epoch" not in out, "refused before any work"
    return time.perf_counter() - started


def refused_in_process(args, message, capsys):
    """assert_refused, with main() in this process: a subprocess costs
    seconds of imports a case, so most cases run here, and some as commands
    (test_bad_flags_as_commands, and the first checkpoint case)."""
    from cnnfast.cli import main

    try:
        code = main(args)  # a refusal after parsing (bench's --match) returns the status
    except SystemExit as exited:  # argparse's refusals exit
        code = exited.code
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnfast: ") and message in lines[0], err
    assert "epoch" not in out


@pytest.mark.parametrize("args, message", [
    (["train", "lenet5", "--epochs", "0"], "cnnfast: --epochs: must be at least 1, got 0"),
    (["train", "lenet5", "--epochs", "-1"], "cnnfast: --epochs: must be at least 1, got -1"),
    (["train", "lenet5", "--epochs", "two"], "cnnfast: --epochs: must be a whole number, got 'two'"),
    (["train", "lenet5", "--batch-size", "-64"], "cnnfast: --batch-size: must be at least 1, got -64"),
    (["train", "lenet5", "--lr", "0"], "cnnfast: --lr: must be a positive number, got 0"),
    (["train", "lenet5", "--lr", "nan"], "cnnfast: --lr: must be a positive number"),
    (["train", "alexnet", "--synthetic", "--steps", "0"], "cnnfast: --steps: must be at least 1, got 0"),
    (["demo", "--epochs", "0"], "cnnfast: --epochs: must be at least 1, got 0"),
    (["bench", "--threads", "0"], "cnnfast: --threads: must be at least 1, got 0"),
    (["train", "lenet5", "--device", "banana"], "cnnfast: --device: 'banana' is not a device"),
    (["train", "lenet5", "--save", "/nonexistent/dir/x.pt"], "cnnfast: --save: /nonexistent/dir/x.pt: its folder"),
    (["bench", "--json", "/nonexistent/dir/b.json"], "cnnfast: --json: /nonexistent/dir/b.json: its folder"),
    (["bench", "--plot", "/nonexistent/p.png"], "cnnfast: --plot: /nonexistent/p.png: its folder"),
    (["train", "lenet5", "--resume", "/nonexistent.pt"], "cnnfast: --resume: /nonexistent.pt: no such file"),
    (["eval", "lenet5", "--checkpoint", "/nonexistent.pt"], "cnnfast: --checkpoint: /nonexistent.pt: no such file"),
    (["eval", "lenet5", "--checkpoint", ROOT], f"cnnfast: --checkpoint: {ROOT}: a folder"),
    (["train", "lenet5", "--data", "/nonexistent"], "cnnfast: --data: /nonexistent: no such folder"),
    (["train", "alexnet"], "cnnfast: --data/--synthetic: give an image folder"),
    (["train", "lenet5", "--synthetic"], "cnnfast: --synthetic: only for alexnet"),
    (["train", "alexnet", "--synthetic", "--reference"], "cnnfast: --reference: only for lenet5"),
    (["train", "alexnet", "--synthetic", "--devices", "cpu,cpu"], "cnnfast: --devices: only with --split devices"),
    (["train", "alexnet", "--synthetic", "--split", "devices", "--devices", "cpu"],
     "cnnfast: --devices: must name the two towers' devices"),
    (["train", "lenet5", "--ddp"], "cnnfast: --ddp: runs under torchrun; launch with: torchrun --nproc_per_node=2"),
    (["bench", "--match", "("], "cnnfast: --match '(': not a regular expression"),
])
def test_a_bad_flag_exits_2_with_one_line(args, message, capsys):
    refused_in_process(args, message, capsys)


def test_bad_flags_as_commands():
    assert_refused(["train", "lenet5", "--epochs", "0"], "cnnfast: --epochs: must be at least 1, got 0")
    assert_refused(["train", "lenet5", "--save", "/nonexistent/dir/x.pt"], "its folder /nonexistent/dir does not")
    assert_refused(["train", "lenet5", "--ddp"], "cnnfast: --ddp: runs under torchrun")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_gpu_is_one_line():
    assert_refused(["train", "lenet5", "--device", "cuda"], "cnnfast: --device: cuda: no CUDA GPU is visible")
    assert_refused(["bench", "--device", "cuda"], "cnnfast: --device: cuda: no CUDA GPU is visible")


def write_idx(path, magic, tensor):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in tensor.shape))
        f.write(bytes(tensor.flatten().tolist()))


@pytest.fixture
def t10k_only(tmp_path):
    """A folder with only MNIST's t10k-* files (200 of the embedded digits)."""
    images, labels = load_embedded()
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, images[-200:])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, labels[-200:].to(torch.uint8))
    return tmp_path


def test_train_and_eval_report_in_one_format(tmp_path, t10k_only):
    checkpoint = str(tmp_path / "lenet5.pt")
    code, out, err = cnnfast_command("train", "lenet5", "--epochs", "1", "--save", checkpoint, "--no-progress")
    assert code == 0, err
    assert "held out; 1 epoch\n" in out and "1 epochs" not in out and "batch 64, device cpu" in out
    assert f"saved the checkpoint to {checkpoint}" in out
    assert "held-out accuracy after 1 epoch: " in out and out.strip().endswith("%")
    # eval needs only the t10k files
    code, out, err = cnnfast_command("eval", "lenet5", "--checkpoint", checkpoint, "--data", str(t10k_only))
    assert code == 0, err
    line = out.strip()
    assert line.startswith("accuracy: ") and line.endswith("/200)") and "%" in line
    percent_text = line.split()[1]
    assert percent_text.endswith("%") and len(percent_text.split(".")[1]) == 3  # two decimals and the sign
    # resuming to an epoch already reached is refused, not silently nothing
    assert_refused(["train", "lenet5", "--epochs", "1", "--resume", checkpoint],
                   f"cnnfast: --epochs 1: {checkpoint} has already trained 1 epoch")


def test_a_wrong_checkpoint_names_the_file_and_the_first_mismatch(tmp_path, capsys):
    state = cnnfast.models.LeNet5().state_dict()
    state["features.0.weight"] = torch.zeros(6, 3, 5, 5)
    wrong_shape = str(tmp_path / "wrong_shape.pt")
    torch.save(state, wrong_shape)
    assert_refused(["eval", "lenet5", "--checkpoint", wrong_shape],
                   f"{wrong_shape}: 'features.0.weight' has shape (6, 3, 5, 5) in the checkpoint, (6, 1, 5, 5)")
    del state["features.0.weight"]
    missing = str(tmp_path / "missing.pt")
    torch.save(state, missing)
    refused_in_process(["eval", "lenet5", "--checkpoint", missing],
                       f"{missing}: the checkpoint lacks 'features.0.weight'", capsys)
    alexnet = str(tmp_path / "alexnet.pt")
    torch.save({"model": "alexnet", "epoch": 1, "state_dict": {"conv1.weight": torch.zeros(1)}}, alexnet)
    refused_in_process(["eval", "lenet5", "--checkpoint", alexnet],
                       f"{alexnet}: a checkpoint of AlexNet, not of LeNet-5", capsys)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    refused_in_process(["eval", "lenet5", "--checkpoint", str(garbage)],
                       f"{garbage}: not a checkpoint", capsys)
    pickled = str(tmp_path / "object.pt")
    torch.save({"model": "lenet5", "state_dict": {}, "extra": object}, pickled)
    refused_in_process(["eval", "lenet5", "--checkpoint", pickled],
                       f"{pickled}: not a checkpoint of tensors", capsys)
    no_state = str(tmp_path / "no_state.pt")
    torch.save({"epoch": 3}, no_state)
    refused_in_process(["eval", "lenet5", "--checkpoint", no_state],
                       f"{no_state}: not a LeNet-5 checkpoint", capsys)


def test_the_ddp_header_says_per_process_and_in_all():
    from cnnfast.train import _header

    assert "batch 64 per process, 128 in all (2 processes)" in _header("LeNet-5", "cpu", 64, 2)
    assert "batch 64, device cpu" in _header("LeNet-5", "cpu", 64, 1)


def test_plurals():
    from cnnfast.train import plural

    assert [plural(1, "epoch"), plural(2, "epoch"), plural(1, "class"), plural(3, "batch"), plural(2, "process")] == [
        "1 epoch", "2 epochs", "1 class", "3 batches", "2 processes"]


def test_models_refuse_inputs_of_the_wrong_shape():
    with pytest.raises(RuntimeError, match=r"LeNet5: expected input of shape \(N, 1, 32, 32\): MNIST's 28×28 digits "
                                           r"zero-padded by 2 .*got \(2, 1, 28, 28\)"):
        cnnfast.models.LeNet5()(torch.randn(2, 1, 28, 28))
    with pytest.raises(RuntimeError, match=r"ReferenceLeNet5: expected input of shape \(N, 1, 32, 32\)"):
        cnnfast.models.ReferenceLeNet5()(torch.randn(28, 28))
    with pytest.raises(TypeError, match="LeNet5: expected a tensor"):
        cnnfast.models.LeNet5()([1.0])
    with pytest.raises(RuntimeError, match=r"AlexNet: expected input of shape \(N, 3, 227, 227\).*got \(1, 3, 224, 224\)"):
        cnnfast.models.AlexNet(10)(torch.randn(1, 3, 224, 224))


def test_the_package_imports_from_any_folder_after_make(tmp_path):
    """make leaves cnnfast installed in .venv (editable): the README's use
    snippet runs from any folder, the checkout's parent included."""
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv")):
        pytest.skip("checks the environment `make` sets up (.venv)")
    snippet = "import torch, cnnfast; print(cnnfast.relu(torch.tensor([-1.0, 2.0])).tolist(), cnnfast.__file__)"
    # A folder holding the checkout under the name cnnfast: that folder is
    # no package, and must not shadow the installed one.
    (tmp_path / "clone").mkdir()
    os.symlink(ROOT, tmp_path / "clone" / "cnnfast")
    for folder in (tmp_path, os.path.dirname(ROOT), tmp_path / "clone"):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=folder, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("[0.0, 2.0] ")


def test_setup_finds_the_torch_of_the_python_running_pip():
    """`pip install .` builds in an isolated environment without torch, run
    by the Python pip was started with; setup.py asks that Python where its
    torch is (find_torch). Simulated with `python -S`, which hides
    site-packages as pip's isolation does."""
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import setup; torch = setup.find_torch(); "
            "print(torch.__version__)")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "building against the torch of" in result.stderr
    assert result.stdout.strip() == torch.__version__
