"""Build cnnfast._C: the CPU kernels always, the CUDA kernels whenever a CUDA
toolkit and a CUDA build of torch are present (a GPU is not needed).

The extension must be compiled against the torch it will run with. With
`pip install --no-build-isolation .` it imports that torch directly; with
a plain `pip install .`, pip's isolated build environment hides it, so this
file asks the Python that runs pip where its torch is and builds against
that one (find_torch).

Environment:
  CNNFAST_CUDA=0|1        force a CPU-only build / make a missing toolkit an error
  CUDA_HOME               the CUDA toolkit root (found by searching otherwise)
  TORCH_CUDA_ARCH_LIST    GPU architectures (default with no GPU visible: 9.0)
  CNNFAST_CPU_ISA         avx512 | avx2 | generic (default: what this CPU has)
  MAX_JOBS                parallel compile jobs for ninja
  CNNFAST_PTXAS_VERBOSE=1 print ptxas's register / shared memory / spill report
                          for every CUDA kernel (make ptxas-report)
  CNNFAST_SANITIZE=1      compile the C++ with AddressSanitizer and
                          UndefinedBehaviorSanitizer (make sanitize)
  CNNFAST_DEBUG=1         keep debug information (-g, nvcc -lineinfo);
                          release builds have none
  CNNFAST_WERROR=1        compiler warnings in cnnfast's sources are errors (CI)
"""

import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.path.join(ROOT, "build", "generated")
DEFAULT_ARCHS = "9.0"



def _load_isa_module():
    """cnnfast/_isa.py by path: the package itself needs the built extension."""
    spec = importlib.util.spec_from_file_location("cnnfast_isa", os.path.join(ROOT, "cnnfast", "_isa.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


isa_support = _load_isa_module()
ISA_TABLE = isa_support.load_table(os.path.join(ROOT, "csrc", "cpu", "isa.json"))

# make sanitize: out-of-bounds accesses in torch-allocated memory (ASan) and
# array indices past a fixed bound, the emulated kernels' shared memory
# included (UBSan's bounds check), stop the process with a report.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer"]


def say(message):
    print(f"cnnfast setup: {message}", file=sys.stderr)


def is_cuda_root(path):
    return (
        path
        and os.path.isfile(os.path.join(path, "bin", "nvcc"))
        and os.path.isfile(os.path.join(path, "include", "cuda_runtime.h"))
        and any(os.path.exists(os.path.join(path, lib, "libcudart.so")) for lib in ("lib64", "lib"))
    )


def nvcc_wrapper_target(nvcc):
    """The nvcc a small wrapper script execs, if `nvcc` is such a script."""
    try:
        with open(nvcc, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    match = re.search(rb"(/\S+/bin/nvcc)\b", head)
    return match.group(1).decode() if match else None


def find_cuda_root():
    """The real toolkit root: the folder with bin/nvcc, include/cuda_runtime.h
    and lib64/libcudart.so. torch guesses it from the nvcc on PATH, which is
    wrong where that nvcc is a wrapper script outside the toolkit."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        for path in (nvcc_wrapper_target(nvcc), os.path.realpath(nvcc)):
            if path:
                candidates.append(os.path.dirname(os.path.dirname(path)))
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for path in candidates:
        if is_cuda_root(path):
            return os.path.realpath(path)
    return None


def choose_cpu_isa():
    try:
        return isa_support.choose(ISA_TABLE, os.environ.get("CNNFAST_CPU_ISA"))
    except ValueError as error:
        sys.exit(f"cnnfast setup: {error}")


def find_torch():
    """The torch to build against. Under pip's build isolation (a plain
    `pip install .`) the build environment has no torch, but the Python
    running the build is the one pip was started with, and its own
    environment has the torch the extension will run with: its
    site-packages folder is added (last) to this process's path."""
    try:
        import torch

        return torch
    except ImportError:
        pass
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    probe = subprocess.run(
        [sys.executable, "-c", "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))"],
        capture_output=True, text=True, env=clean,
    )
    if probe.returncode != 0:
        sys.exit(f"cnnfast setup: torch is not installed for {sys.executable}; install it first "
                 "(pip install torch), then: pip install --no-build-isolation .")
    site = probe.stdout.strip()
    sys.path.append(site)
    import torch

    say(f"building against the torch of {sys.executable} ({torch.__version__}, {site}), not pip's isolated one")
    return torch


def decide_cuda(torch):
    mode = os.environ.get("CNNFAST_CUDA", "")
    if mode == "0":
        say("CNNFAST_CUDA=0: building the CPU kernels only")
        return None
    root = find_cuda_root()
    problem = None
    if torch.version.cuda is None:
        problem = f"torch {torch.__version__} is a CPU-only build"
    elif root is None:
        problem = "no CUDA toolkit found (set CUDA_HOME to the folder holding bin/nvcc)"
    if problem:
        if mode == "1":
            sys.exit(f"cnnfast setup: CNNFAST_CUDA=1 but {problem}")
        say(f"{problem}: building the CPU kernels only")
        return None
    return root


def write_build_config(torch_version, archs, isa):
    os.makedirs(GENERATED, exist_ok=True)
    with open(os.path.join(ROOT, "csrc", "build_config.h.in")) as f:
        text = f.read()
    for key, value in (("CNNFAST_TORCH_VERSION", torch_version), ("CNNFAST_CUDA_ARCHS", archs),
                       ("CNNFAST_CPU_ISA", isa)):
        text = text.replace(f"@{key}@", value)
    path = os.path.join(GENERATED, "cnnfast_build_config.h")
    if not os.path.exists(path) or open(path).read() != text:  # keep ninja's timestamps
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(ROOT, "cnnfast", "_build_info.py"), "w") as f:
        f.write("# Written by setup.py: what the extension was built for.\n")
        f.write(f"torch_version = {torch_version!r}\n")
        f.write(f"cpu_isa = {isa!r}\n")
        f.write(f"cpu_flags = {ISA_TABLE[isa]['cpuinfo']!r}\n")


def extension_modules():
    torch = find_torch()

    cuda_root = decide_cuda(torch)
    if cuda_root:
        os.environ["CUDA_HOME"] = cuda_root
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    # cpp_extension reads CUDA_HOME when first imported: import it only now.
    from torch.utils import cpp_extension

    if cuda_root:
        cpp_extension.CUDA_HOME = cuda_root
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPU") if cuda_root else ""
    isa = choose_cpu_isa()
    write_build_config(torch.__version__, archs, isa)

    sources = sorted(
        glob.glob("csrc/*.cpp") + glob.glob("csrc/common/*.cpp") + glob.glob("csrc/cpu/*.cpp")
        + glob.glob("csrc/autograd/*.cpp") + glob.glob("csrc/testing/*.cpp")
    )
    # -fopenmp: at::parallel_for is an OpenMP pragma in torch's headers, so
    # without it the CPU kernels would run on one thread. -fno-trapping-math
    # and -fno-math-errno let loops with selects and sqrt vectorize; neither
    # changes a result.
    debug = os.environ.get("CNNFAST_DEBUG") == "1"
    werror = os.environ.get("CNNFAST_WERROR") == "1"
    cxx_flags = ["-O3", "-g" if debug else "-g0", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"]
    cxx_flags += ISA_TABLE[isa]["compile"] + (["-Werror"] if werror else [])
    link_flags = ["-fopenmp"]
    if os.environ.get("CNNFAST_SANITIZE") == "1":
        cxx_flags += SANITIZE_FLAGS
        link_flags += SANITIZE_FLAGS
        say(f"CNNFAST_SANITIZE=1: {' '.join(SANITIZE_FLAGS)}")
    kwargs = dict(
        name="cnnfast._C",
        include_dirs=[os.path.join(ROOT, "csrc"), GENERATED],
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=link_flags,
    )
    say(f"torch {torch.__version__}; CPU ISA {isa} ({' '.join(ISA_TABLE[isa]['compile']) or 'no extra flags'}); "
        f"{'debug information' if debug else 'no debug information'}{'; warnings are errors' if werror else ''}")
    if cuda_root:
        sources += sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/testing/*.cu"))
        # 20014: a __host__ function called from __host__ __device__ code. It
        # compiles, with a warning, to device code that computes garbage; the
        # CPU emulation cannot see it, so it fails the build here.
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "--diag-error=20014"] + (["-lineinfo"] if debug else [])
        if werror:
            kwargs["extra_compile_args"]["nvcc"] += ["-Werror", "all-warnings"]
        if os.environ.get("CNNFAST_PTXAS_VERBOSE") == "1":
            kwargs["extra_compile_args"]["nvcc"] += ["-Xptxas", "-v"]
        kwargs["define_macros"] = [("CNNFAST_WITH_CUDA", None)]
        say(f"CUDA toolkit {cuda_root}; torch CUDA {torch.version.cuda}; archs {archs}")
        return [cpp_extension.CUDAExtension(sources=sources, **kwargs)], cpp_extension
    return [cpp_extension.CppExtension(sources=sources, **kwargs)], cpp_extension


def main():
    # `python setup.py cuda-root` / `cpu-isa`: what this file would decide,
    # for the CMake build (see the Makefile) to use the same toolkit and ISA.
    queries = {"cuda-root": lambda: find_cuda_root() or "", "cpu-isa": choose_cpu_isa}
    if len(sys.argv) == 2 and sys.argv[1] in queries:
        print(queries[sys.argv[1]]())
        return
    from setuptools import setup

    ext_modules, cpp_extension = extension_modules()
    # Name, version and packages come from pyproject.toml.
    setup(
        ext_modules=ext_modules,
        cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
        python_requires=">=3.9",
    )


# Imported (tests/test_cli.py), it only defines these functions.
if __name__ == "__main__":
    main()
