#!/usr/bin/env bash
# make gpu-check: everything a GPU machine with no network can tell us, in
# one folder ($1, default gpu-check-report): the build with the machine's
# own torch, the CUDA tests, compute-sanitizer's memcheck and racecheck over
# a subset, the full benchmark (table, JSON, plot) and the demo, then
# summary.md. Each step's failure is recorded and the next step still runs.
#
# Lent GPU time is short, so every step has a time limit and a call can
# pick its steps:
#   GPU_CHECK_STEPS="cuda-tests bench"  only these (the build always runs);
#                                       "bench": torch's default precision
#                                       (TF32 convolutions), "bench-strict":
#                                       the GEMM cases in IEEE float32;
#                                       "bench-direct": the conv layers
#                                       Winograd takes, timed again with
#                                       CNNFAST_WINOGRAD=0 (the direct GEMM);
#                                       "breakdown": AlexNet's training step
#                                       at batch 128, kernel by kernel, for
#                                       cnnfast and torch
#                                       (tools/step_breakdown.py);
#                                       "pool-bandwidth": max pooling's
#                                       kernels back to back, GB/s against
#                                       the data sheet and a copy
#                                       (tools/pool_bandwidth.py);
#                                       "profile" (not run by default): Nsight
#                                       Compute over tools/gpu_profile.py
#   GPU_CHECK_LIMITS="bench=120"        other limits, in seconds, per step
#   GPU_CHECK_BUDGET=540                the whole run's seconds (default 540,
#                                       inside a 10-minute call): a step gets
#                                       at most what is left, and is skipped
#                                       with under 30 s left. summary.md is
#                                       rewritten after every step, so a run
#                                       stopped from outside keeps what it did
#   GPU_CHECK_PREBUILT=1                skip the build when the extension
#                                       already imports with CUDA compiled in
set -u
PY=${GPU_PY:-python3}
REPORT=${1:-gpu-check-report}
STEPS=${GPU_CHECK_STEPS:-cuda-tests bench bench-strict bench-direct breakdown pool-bandwidth demo memcheck racecheck}
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
mkdir -p "$REPORT"
declare -A STATUS

limit_of() {  # limit_of NAME DEFAULT_S
    local pair
    for pair in ${GPU_CHECK_LIMITS:-}; do
        [ "${pair%%=*}" = "$1" ] && { echo "${pair#*=}"; return; }
    done
    echo "$2"
}

BUDGET=${GPU_CHECK_BUDGET:-540}

write_summary() {  # summary.md from what has run so far
    {
        echo "# make gpu-check, $(date -u +%F)"
        echo; echo '```'; cat "$REPORT/info.txt" 2>/dev/null; echo '```'
        for name in build cuda-tests bench bench-strict bench-direct breakdown pool-bandwidth demo memcheck racecheck profile; do
            echo; echo "## $name: ${STATUS[$name]:-not run}"
            # The bench's table follows below; its log's end shows a failure.
            [ -f "$REPORT/$name.log" ] && { echo '```'; grep -v '^|' "$REPORT/$name.log" | tail -6; echo '```'; }
        done
        echo; sed -n '/^| case/,/^$/p' "$REPORT/bench.log" 2>/dev/null
        if [ -f "$REPORT/bench-direct.log" ]; then
            echo; echo "### The same layers with CNNFAST_WINOGRAD=0"
            echo; sed -n '/^| case/,/^$/p' "$REPORT/bench-direct.log"
        fi
        [ -f "$REPORT/breakdown.log" ] && { echo; grep -v '^USDT' "$REPORT/breakdown.log"; }
        [ -f "$REPORT/pool-bandwidth.log" ] && { echo; cat "$REPORT/pool-bandwidth.log"; }
    } > "$REPORT/summary.md"
}

step() {  # step NAME DEFAULT_LIMIT_S COMMAND...: runs it with its output in NAME.log
    local name=$1 limit left; limit=$(limit_of "$1" "$2"); shift 2
    left=$((BUDGET - SECONDS))
    if [ "$left" -lt 30 ]; then
        STATUS[$name]="skipped: ${left} s of the ${BUDGET} s budget left"
        echo "$name: ${STATUS[$name]}"
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local begin=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$REPORT/$name.log" 2>&1
    local rc=$?
    STATUS[$name]="exit $rc, $((SECONDS - begin)) s"
    [ $rc -eq 124 ] && STATUS[$name]+=" (stopped at its ${limit} s limit)"
    echo "$name: ${STATUS[$name]}"
    write_summary
    return $rc
}

wanted() { [[ " $STEPS " == *" $1 "* ]]; }

cuda_extension_imports() {
    "$PY" -c "import cnnfast, sys; sys.exit(0 if cnnfast.info()['cuda_compiled'] else 1)" 2>/dev/null
}

if [ "${GPU_CHECK_PREBUILT:-0}" = 1 ] && cuda_extension_imports; then
    echo "prebuilt extension imports; no build" > "$REPORT/build.log"
    STATUS[build]="prebuilt"
else
    # The machine's own cores, whatever make exported for this laptop-sized one.
    step build 420 env MAX_JOBS="$(nproc)" "$PY" setup.py build_ext --inplace \
        || { tail -30 "$REPORT/build.log"; exit 1; }
fi
"$PY" -m cnnfast info > "$REPORT/info.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv >> "$REPORT/info.txt" 2>&1

if wanted cuda-tests; then
    step cuda-tests 300 "$PY" -m pytest -q -rfE -p no:cacheprovider -m cuda tests
fi
if wanted bench; then
    step bench 300 "$PY" -m cnnfast bench --device cuda --no-progress --json "$REPORT/bench.json" --plot "$REPORT/bench.png"
fi
if wanted bench-strict; then  # the GEMM cases again, TF32 off on both sides
    step bench-strict 150 "$PY" -m cnnfast bench --device cuda --no-progress --precision strict \
        --match "conv2d|linear|train step" --json "$REPORT/bench-strict.json"
fi
if wanted bench-direct; then
    step bench-direct 120 env CNNFAST_WINOGRAD=0 "$PY" -m cnnfast bench --device cuda --no-progress \
        --match "conv2d alexnet conv[345]" --json "$REPORT/bench-direct.json"
fi
if wanted breakdown; then
    step breakdown 120 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" tools/step_breakdown.py \
        --device cuda --batch 128 --steps 5
fi
if wanted pool-bandwidth; then
    step pool-bandwidth 60 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" tools/pool_bandwidth.py
fi
if wanted demo; then
    step demo 180 "$PY" -m cnnfast demo --output "$REPORT/demo" --epochs 5 --no-progress
fi
# memcheck over each op at small shapes; racecheck over the kernels with
# shared memory and barriers: the implicit GEMM (one case per GEMM shape,
# each of the four tiles — tile64_rows for the 64-row one, deep_wgrad and
# tile96_deep_wgrad for the 48- and 96-row ones in depth slices —
# Winograd's batched launch: it takes seconds per test), LeNet-5's
# forward and max pooling's bands (a plane in one band, in three; two
# planes in one).
if wanted memcheck; then
    step memcheck 180 "$SANITIZER" --tool memcheck --error-exitcode 1 "$PY" -m pytest -q -m cuda -x -p no:cacheprovider \
        tests/test_pooling.py tests/test_activations.py tests/test_lrn.py tests/test_fused_stage.py \
        tests/test_conv_linear.py tests/test_lenet5_forward.py \
        -k "lenet or alexnet or relu or tanh or groups3 or deep_wgrad or lrn or pool or winograd"
fi
if wanted racecheck; then
    step racecheck 120 "$SANITIZER" --tool racecheck --error-exitcode 1 "$PY" -m pytest -q -m cuda -x -p no:cacheprovider \
        tests/test_conv_linear.py tests/test_lenet5_forward.py tests/test_pooling.py \
        -k "(matches_torch and max-dtype0 and (alexnet_pool2 or bands_tall_plane or bands_of_small_planes)) or ((lenet_conv2 or groups3 or deep_wgrad or tile64_rows or tile96_features or lenet_fc1 or alexnet_conv3) and True-relu) or (matches_the_reference and 9-cuda) or ((winograd_pad2 or winograd_groups) and relu)"
fi
if wanted profile; then
    # The card's clocks as found (--clock-control none), one pass per case.
    step profile 180 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
        "${NCU:-ncu}" --clock-control none --profile-from-start off \
        --kernel-name-base demangled --kernel-name regex:cnnfast \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        "$PY" tools/gpu_profile.py
fi

write_summary
cat "$REPORT/summary.md"
