#!/usr/bin/env bash
# make gpu-prebuild: the extension for the lent GPU machines, built here so
# that their short lease is not spent compiling (`make gpu-check` there with
# GPU_CHECK_PREBUILT=1). They run torch 2.11.0+cu130 on Python 3.12 (device
# tool's KINDS.md); override with GPU_TORCH / GPU_PYTHON.
#
#   1. a Python $GPU_PYTHON venv (.gpu-prebuild/venv) with that torch's wheel
#      installed without its CUDA dependencies (gigabytes), which the build
#      does not need: torch's own import finds them on LD_LIBRARY_PATH,
#      taken from this checkout's CUDA 13 torch in .venv (make venv);
#   2. the committed HEAD built in a worktree (.gpu-prebuild/tree) for
#      TORCH_CUDA_ARCH_LIST (default 9.0), incrementally on later runs;
#   3. the extension stripped of debug information (80 MB down to 16 MB: the
#      device tool carries at most 64 MB) into .prebuilt/, with its
#      _build_info.py.
#
# On the GPU machine (carry .prebuilt):
#   cp .prebuilt/* cnnfast/ && GPU_CHECK_PREBUILT=1 make gpu-check
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/.gpu-prebuild
TORCH_VERSION=${GPU_TORCH:-2.11.0}
PY_VERSION=${GPU_PYTHON:-3.12}
ARCHS=${TORCH_CUDA_ARCH_LIST:-9.0}
mkdir -p "$WORK" "$ROOT/.prebuilt"

find_python() {  # the first candidate that runs as Python $PY_VERSION (a pyenv shim may not)
    local candidate
    for candidate in "python$PY_VERSION" $(ls -d "$HOME"/.pyenv/versions/"$PY_VERSION".*/bin/python 2>/dev/null | sort -rV); do
        if "$candidate" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$PY_VERSION')" 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}
PYTHON=$(find_python)
[ -n "$PYTHON" ] || { echo "gpu-prebuild: no Python $PY_VERSION found" >&2; exit 1; }

# The CUDA libraries of this checkout's torch (make venv installs it).
NVIDIA=$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/nvidia 2>/dev/null | head -1)
[ -n "$NVIDIA" ] || { echo "gpu-prebuild: no CUDA libraries in .venv; run make venv first" >&2; exit 1; }
LIBS=$(find "$NVIDIA" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

VENV=$WORK/venv
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-deps "torch==$TORCH_VERSION"
    "$VENV/bin/pip" install -q --no-warn-conflicts typing_extensions filelock sympy networkx jinja2 fsspec "setuptools<82" ninja numpy
fi
"$VENV/bin/python" -c "import torch; print('gpu-prebuild: torch', torch.__version__, 'CUDA', torch.version.cuda)"

TREE=$WORK/tree
if [ ! -d "$TREE" ]; then
    git -C "$ROOT" worktree add -q --detach "$TREE" HEAD
else
    git -C "$TREE" checkout -q --detach "$(git -C "$ROOT" rev-parse HEAD)"
fi
(cd "$TREE" && CNNFAST_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS" PATH="$VENV/bin:$PATH" \
    "$VENV/bin/python" setup.py build_ext --inplace)

SO=$(ls "$TREE"/cnnfast/_C.cpython-*.so)
rm -f "$ROOT"/.prebuilt/_C.cpython-*.so
strip --strip-debug -o "$ROOT/.prebuilt/$(basename "$SO")" "$SO"
cp "$TREE/cnnfast/_build_info.py" "$ROOT/.prebuilt/"
echo "gpu-prebuild: HEAD $(git -C "$ROOT" rev-parse --short HEAD) for torch $TORCH_VERSION, Python $PY_VERSION, archs $ARCHS:"
ls -l "$ROOT/.prebuilt"
