# Every target sets up what it needs: a fresh clone runs `make test` or
# `make demo` directly. `make gpu-check` uses the machine's own python and
# torch instead (a GPU machine with no network).
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MAX_JOBS ?= 2

SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' -o -name '*.in' -o -name '*.json') setup.py cnnfast/_isa.py
STAMP := build/.built-$(notdir $(VENV))

.PHONY: venv build test test-cpu test-emulated test-cpp sanitize ptxas-report sass-report demo bench bench-pytest gpu-check gpu-prebuild clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Incremental: ninja recompiles only what changed. The checkout is then on
# .venv's path (a .pth file, as an editable install), so `import cnnfast`
# works from any folder once .venv is activated. (pip install -e would
# compile everything again in a folder of its own.)
build: $(STAMP)

$(STAMP): $(VENV)/.installed $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/cnnfast-checkout.pth', 'w').write(sys.argv[1] + '\n')" "$(CURDIR)"
	@mkdir -p build && touch $@

test: test-cpu test-emulated test-cpp

test-cpu: build
	$(PY) -c "import cnnfast, json; i = cnnfast.info(); print(json.dumps({k: i[k] for k in ('torch', 'cuda_compiled', 'cuda_archs', 'cpu_isa', 'cuda_available')}))"
	$(PY) -m pytest -q tests

# The same suite with the CUDA kernels' code running on the CPU; it fails
# if a CUDA kernel of the table never ran (tests/conftest.py).
test-emulated: build
	CNNFAST_EMULATE_CUDA=1 CNNFAST_KERNEL_COVERAGE=1 $(PY) -m pytest -q tests

# The libtorch (CMake) build and its CTest check, for the other CPU ISA than
# the Python extension's where the machine has AVX-512 (avx2), so that CI
# compiles and runs the kernels for both.
test-cpp: $(VENV)/.installed
	TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-9.0}" cmake -S . -B cmake-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
	  -DCUDA_TOOLKIT_ROOT_DIR="$$($(PY) setup.py cuda-root)" -DCNNFAST_CPU_ISA="$$($(PY) setup.py cpu-isa | sed s/avx512/avx2/)" \
	  -DCNNFAST_WITH_CUDA=OFF -DCNNFAST_WERROR=$$([ "$${CNNFAST_WERROR:-0}" = 1 ] && echo ON || echo OFF)
	cmake --build cmake-build -j $(MAX_JOBS)
	cd cmake-build && ctest --output-on-failure

# Both suites again with the C++ built under AddressSanitizer and UBSan
# (setup.py, CNNFAST_SANITIZE): an out-of-bounds access of the CPU kernels
# or of the CUDA kernels' code under emulation, shared-memory tables
# included, stops the run with a report (--capture=sys: pytest would
# otherwise swallow the sanitizers' report with the process). A CPU-only
# build of its own, in a copy of the tree (the normal build keeps its
# objects); about 15 minutes.
SANITIZE_DIR := build/sanitize
SANITIZE_RUN := LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1
sanitize: $(VENV)/.installed
	mkdir -p $(SANITIZE_DIR)
	git ls-files -z --cached --others --exclude-standard | tar --null -cf - -T - | tar -xf - -C $(SANITIZE_DIR)
	cd $(SANITIZE_DIR) && CNNFAST_CUDA=0 CNNFAST_SANITIZE=1 $(abspath $(PY)) setup.py -q build_ext --inplace
	cd $(SANITIZE_DIR) && $(SANITIZE_RUN) $(abspath $(PY)) -m pytest -q -p no:cacheprovider --capture=sys tests
	cd $(SANITIZE_DIR) && $(SANITIZE_RUN) CNNFAST_EMULATE_CUDA=1 $(abspath $(PY)) -m pytest -q -p no:cacheprovider --capture=sys tests

# ptxas's register / shared-memory / spill report for every CUDA kernel,
# from a separate build folder (the normal build keeps its flags).
ptxas-report: $(VENV)/.installed
	CNNFAST_CUDA=1 CNNFAST_PTXAS_VERBOSE=1 $(PY) setup.py build_ext --build-temp build/ptxas \
	  --build-lib build/ptxas-lib 2>&1 | $(PY) tools/ptxas_summary.py

# The SASS of the CUDA kernels the last build compiled, summarized per
# kernel (spills, the hottest loop's instruction mix); no GPU needed.
sass-report: build
	$(PY) tools/sass_report.py

# The main job: train LeNet-5, then bench --quick and its plot (demo-output/).
demo: build
	$(PY) -m cnnfast demo

# Every case, with the table, JSON and plot in bench-output/.
bench: build
	mkdir -p bench-output
	$(PY) -m cnnfast bench --json bench-output/bench.json --plot bench-output/bench.png | tee bench-output/bench.md

# The same cases under pytest-benchmark.
bench-pytest: build
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,rounds -q

# On a GPU machine: its own python/torch, no venv, no network. Everything
# lands in $(REPORT)/, summary.md first (tools/gpu_check.sh).
GPU_PY ?= python3
REPORT ?= gpu-check-report
gpu-check:
	GPU_PY=$(GPU_PY) bash tools/gpu_check.sh $(REPORT)

# Here, for the lent GPU machines: .prebuilt/ (tools/gpu_prebuild.sh).
gpu-prebuild: venv
	bash tools/gpu_prebuild.sh

clean:
	rm -rf build cmake-build cnnfast/_C*.so cnnfast/_build_info.py demo-output bench-output
