"""Loads the compiled extension, or says plainly why it cannot."""

import importlib

import torch

from . import _isa

REBUILD = "pip install --no-build-isolation -e .  (or `make build` in a checkout)"


def load_extension():
    try:
        build = importlib.import_module("cnnfast._build_info")
    except ImportError:
        raise ImportError(
            f"cnnfast's compiled extension has not been built (running torch {torch.__version__}). "
            f"Build it with: {REBUILD}"
        ) from None
    if build.torch_version != torch.__version__:
        raise ImportError(
            f"cnnfast was built against torch {build.torch_version}, but torch {torch.__version__} "
            f"is installed. Rebuild it with: {REBUILD}"
        )
    missing = _isa.missing_flags(build.cpu_flags)
    if missing:
        raise ImportError(
            f"cnnfast was compiled for {build.cpu_isa} but this CPU lacks {', '.join(missing)}. "
            f"Rebuild it here (CNNFAST_CPU_ISA=avx2 or generic to choose less): {REBUILD}"
        )
    try:
        return importlib.import_module("cnnfast._C")
    except (ImportError, OSError) as error:
        raise ImportError(
            f"cnnfast's extension failed to load: {error}. It was built against torch "
            f"{build.torch_version}; torch {torch.__version__} is installed. Rebuild it with: {REBUILD}"
        ) from error
