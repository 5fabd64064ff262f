"""The input shape each model takes, checked before any layer runs."""

import torch


def check_input(model, x, channels, size, note=""):
    """A RuntimeError naming the expected shape where x is not a batch of
    channels×size×size images (as torch's layers raise for shapes)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model}: expected a tensor, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise RuntimeError(f"{model}: expected input of shape (N, {channels}, {size}, {size}){note}, "
                           f"got {tuple(x.shape)}")
