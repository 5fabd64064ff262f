"""cnnfast.convert: a copy of a torch.nn model on cnnfast's layers."""

import copy
from collections import Counter

from torch import nn as tnn

from . import nn

# torch.nn layer → its cnnfast twin (each has from_torch).
TWINS = {
    tnn.Conv2d: nn.Conv2d,
    tnn.Linear: nn.Linear,
    tnn.MaxPool2d: nn.MaxPool2d,
    tnn.AvgPool2d: nn.AvgPool2d,
    tnn.ReLU: nn.ReLU,
    tnn.Tanh: nn.Tanh,
    tnn.LocalResponseNorm: nn.LocalResponseNorm,
}
FUSABLE = {tnn.ReLU: "relu", tnn.Tanh: "tanh"}


def _twin(module, activation=None):
    """The cnnfast twin of a torch layer, or None where its arguments are
    ones cnnfast does not take (dilation, a padding mode, ...)."""
    twin = TWINS.get(type(module))
    if twin is None:
        return None
    try:
        if activation is not None:
            return twin.from_torch(module, activation=activation)
        return twin.from_torch(module)
    except NotImplementedError:
        return None


def _convert_children(module, counts):
    children = list(module.named_children())
    sequential = isinstance(module, tnn.Sequential)
    skip = set()
    for index, (name, child) in enumerate(children):
        if name in skip:
            continue
        if type(child) in TWINS:
            activation = None
            following = children[index + 1][1] if sequential and index + 1 < len(children) else None
            if type(child) in (tnn.Conv2d, tnn.Linear) and type(following) in FUSABLE:
                activation = FUSABLE[type(following)]
            replacement = _twin(child, activation)
            if replacement is None:
                counts["kept"][type(child).__name__] += 1
                continue
            setattr(module, name, replacement)
            counts["swapped"][type(child).__name__] += 1
            if activation is not None:
                # The activation now runs inside the layer; a parameterless
                # Identity keeps the Sequential's indices, so no state_dict
                # key changes.
                next_name = children[index + 1][0]
                setattr(module, next_name, tnn.Identity())
                skip.add(next_name)
                counts["fused"][f"{type(child).__name__}+{type(following).__name__}"] += 1
        elif isinstance(child, tuple(TWINS.values())):
            continue  # already cnnfast's
        elif any(True for _ in child.children()):
            _convert_children(child, counts)
        elif not isinstance(child, (tnn.Identity, tnn.Flatten)):
            counts["kept"][type(child).__name__] += 1


def _describe(counter):
    return ", ".join(f"{name} ×{count}" for name, count in sorted(counter.items())) or "none"


def convert(model, verbose=True):
    """A copy of `model` with every supported torch.nn layer swapped for
    cnnfast's, and each Conv2d or Linear directly followed by ReLU or Tanh
    inside an nn.Sequential fused into one layer (the activation's slot
    becomes an Identity, so state_dict keys and shapes stay the same and the
    original's checkpoints load). Layers cnnfast has no kernel for — or whose
    arguments it does not take, such as a dilated convolution — stay as they
    are. Prints a one-line summary unless verbose=False."""
    converted = copy.deepcopy(model)
    counts = {"swapped": Counter(), "fused": Counter(), "kept": Counter()}
    if type(converted) in TWINS:
        twin = _twin(converted)
        if twin is not None:
            counts["swapped"][type(converted).__name__] += 1
            converted = twin
        else:
            counts["kept"][type(converted).__name__] += 1
    else:
        _convert_children(converted, counts)
    if verbose:
        print(
            f"cnnfast.convert: swapped {_describe(counts['swapped'])}; fused {_describe(counts['fused'])}; "
            f"kept {_describe(counts['kept'])}"
        )
    return converted
