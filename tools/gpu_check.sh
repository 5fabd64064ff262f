#!/usr/bin/env bash
# make gpu-check: everything a GPU machine with no network can tell us, in
# one folder ($1, default gpu-check-report): the build with the machine's
# own torch, the CUDA tests, compute-sanitizer's memcheck and racecheck over
# a subset, the full benchmark (table, JSON, plot) and the demo, then
# summary.md. Each step's failure is recorded and the next step still runs.
set -u
PY=${GPU_PY:-python3}
REPORT=${1:-gpu-check-report}
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
mkdir -p "$REPORT"
declare -A STATUS

step() {  # step NAME COMMAND...: runs it with its output in NAME.log
    local name=$1; shift
    local begin=$SECONDS
    "$@" > "$REPORT/$name.log" 2>&1
    local rc=$?
    STATUS[$name]="exit $rc, $((SECONDS - begin)) s"
    echo "$name: ${STATUS[$name]}"
    return $rc
}

step build "$PY" setup.py build_ext --inplace || { tail -30 "$REPORT/build.log"; exit 1; }
"$PY" -m cnnfast info > "$REPORT/info.txt" 2>&1
"$PY" -c "import expecttest" 2>/dev/null || echo "expecttest is missing: torch.library.opcheck tests will fail" \
    | tee -a "$REPORT/info.txt"
step cuda-tests "$PY" -m pytest -q -m cuda tests
# memcheck over each op at small shapes; racecheck over the implicit GEMM,
# the kernel with shared memory and barriers.
step memcheck "$SANITIZER" --tool memcheck --error-exitcode 1 "$PY" -m pytest -q -m cuda -x \
    tests/test_pooling.py tests/test_activations.py tests/test_lrn.py tests/test_fused_stage.py \
    tests/test_conv_linear.py -k "lenet or alexnet or relu or tanh or groups3 or deep_wgrad or lrn or pool"
step racecheck "$SANITIZER" --tool racecheck --error-exitcode 1 "$PY" -m pytest -q -m cuda -x \
    tests/test_conv_linear.py -k "lenet_conv2 or groups3 or deep_wgrad or lenet_fc1"
step bench "$PY" -m cnnfast bench --device cuda --no-progress --json "$REPORT/bench.json" --plot "$REPORT/bench.png"
step demo "$PY" -m cnnfast demo --output "$REPORT/demo" --epochs 5 --no-progress

{
    echo "# make gpu-check, $(date -u +%F)"
    echo; echo '```'; cat "$REPORT/info.txt"; echo '```'
    for name in build cuda-tests memcheck racecheck bench demo; do
        echo; echo "## $name: ${STATUS[$name]:-not run}"
        # The bench's table follows below; its log's end shows a failure.
        echo '```'; grep -v '^|' "$REPORT/$name.log" | tail -6; echo '```'
    done
    echo; sed -n '/^| case/,/^$/p' "$REPORT/bench.log"
} > "$REPORT/summary.md"
cat "$REPORT/summary.md"
