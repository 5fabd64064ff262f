# Every target sets up what it needs: a fresh clone runs `make test` or
# `make demo` directly. `make gpu-check` uses the machine's own python and
# torch instead (a GPU machine with no network).
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MAX_JOBS ?= 2

SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' -o -name '*.in') setup.py
STAMP := build/.built-$(notdir $(VENV))

.PHONY: venv build test test-cpu test-emulated test-cpp ptxas-report demo bench gpu-check clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Incremental: ninja recompiles only what changed.
build: $(STAMP)

$(STAMP): $(VENV)/.installed $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
	@mkdir -p build && touch $@

test: test-cpu test-emulated test-cpp

test-cpu: build
	$(PY) -c "import cnnfast, json; i = cnnfast.info(); print(json.dumps({k: i[k] for k in ('torch', 'cuda_compiled', 'cuda_archs', 'cpu_isa', 'cuda_available')}))"
	$(PY) -m pytest -q tests

# The same suite with the CUDA kernels' code running on the CPU.
test-emulated: build
	CNNFAST_EMULATE_CUDA=1 $(PY) -m pytest -q tests

# The libtorch (CMake) build and its CTest check.
test-cpp: $(VENV)/.installed
	TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-9.0}" cmake -S . -B cmake-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
	  -DCUDA_TOOLKIT_ROOT_DIR="$$($(PY) setup.py cuda-root)" -DCNNFAST_CPU_ISA="$$($(PY) setup.py cpu-isa)" \
	  -DCNNFAST_WITH_CUDA=OFF
	cmake --build cmake-build -j $(MAX_JOBS)
	cd cmake-build && ctest --output-on-failure

# ptxas's register / shared-memory / spill report for every CUDA kernel,
# from a separate build folder (the normal build keeps its flags).
ptxas-report: $(VENV)/.installed
	CNNFAST_CUDA=1 CNNFAST_PTXAS_VERBOSE=1 $(PY) setup.py build_ext --build-temp build/ptxas \
	  --build-lib build/ptxas-lib 2>&1 | $(PY) tools/ptxas_summary.py

demo: build
	$(PY) -m cnnfast demo

bench: build
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,rounds -q

# On a GPU machine: its own python/torch, no venv, no network. Everything
# lands in $(REPORT)/, summary.md first.
GPU_PY ?= python3
REPORT ?= gpu-check-report
SANITIZER ?= $(shell command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
gpu-check:
	mkdir -p $(REPORT)
	$(GPU_PY) setup.py build_ext --inplace > $(REPORT)/build.log 2>&1 || (tail -30 $(REPORT)/build.log; exit 1)
	$(GPU_PY) -m cnnfast info > $(REPORT)/info.txt
	-$(GPU_PY) -m pytest -q -m cuda tests > $(REPORT)/cuda-tests.log 2>&1
	-$(SANITIZER) --tool memcheck --error-exitcode 1 $(GPU_PY) -m pytest -q -m cuda -x tests/test_pooling.py tests/test_activations.py tests/test_conv_linear.py -k "lenet or alexnet or relu or tanh or groups3 or deep_wgrad" > $(REPORT)/memcheck.log 2>&1
	# racecheck: the implicit GEMM is the kernel with shared memory and barriers.
	-$(SANITIZER) --tool racecheck --error-exitcode 1 $(GPU_PY) -m pytest -q -m cuda -x tests/test_conv_linear.py -k "lenet_conv2 or groups3 or deep_wgrad or lenet_fc1" > $(REPORT)/racecheck.log 2>&1
	-$(GPU_PY) -m pytest benchmarks --benchmark-only -q --benchmark-json=$(REPORT)/benchmarks.json > $(REPORT)/benchmarks.log 2>&1
	-$(GPU_PY) -m cnnfast demo > $(REPORT)/demo.log 2>&1
	{ echo "# make gpu-check, $$(date -u +%F)"; echo; echo '```'; cat $(REPORT)/info.txt; echo '```'; \
	  for log in cuda-tests memcheck racecheck; do echo "## $$log"; echo '```'; tail -5 $(REPORT)/$$log.log; echo '```'; done; \
	  echo "## benchmarks"; echo '```'; sed -n '/speedup over the reference/,/^$$/p' $(REPORT)/benchmarks.log; echo '```'; \
	  echo "## demo"; echo '```'; cat $(REPORT)/demo.log; echo '```'; } > $(REPORT)/summary.md
	cat $(REPORT)/summary.md

clean:
	rm -rf build cmake-build cnnfast/_C*.so cnnfast/_build_info.py
