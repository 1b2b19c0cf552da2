#!/usr/bin/env bash
# Every GPU check of tumorsim in one command (issue 6), for a machine with one CUDA GPU:
#   1. the `gpu`-marked tests (CuPy kernels against NumPy, the benchmark's GPU path);
#   2. the full benchmark (copy bandwidth, fused step and its peers at 128^3, 256^3,
#      384^3 float32 and 256^3 float64, the NumPy peers at 128^3, end-to-end runs with
#      snapshots and checkpoints, the largest-grid estimate), PASS/FAIL against the targets;
#   3. benchmarks/imex_cycle.py: IMEX and explicit step costs at 256^3, then the 21-day
#      IMEX run if the time left (up to ~570 s from the start) allows (issue 7);
#   then prints the short table last.
#
# Files (at most 8, flat, for the device tool's $OUT): bench.json, bench.md, summary.txt,
# bench.log, pytest_gpu.log, environment.txt, imex_cycle.json, imex_cycle.log, under $OUT
# when set, else benchmarks/out/.
#
# Expected on one H100 80GB (estimates; no GPU was available when this was written):
# tests about 1 min, benchmark about 2.5-3.5 min, imex cycle what is left: at most ~9.5 min
# in all. With 15 device minutes per session, run it with timeout_s=600 and no second try. Hard limits:
# the tests get at most 150 s, the benchmark what is left of 290 s, and the benchmark
# skips its optional peers (marked "skipped: time budget") 90 s before that.
#
# Wheels the device image lacks (pydantic and its dependencies) are installed from .whl/
# when pydantic does not import: fetch them with benchmarks/fetch_wheels.sh, carry `.whl`.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
start=$(date +%s)
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX shares the GPU with CuPy

if ! python3 -c "import pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

{
    date -u '+%Y-%m-%d %H:%M:%S UTC'
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
        --format=csv 2>&1 || echo "nvidia-smi: not available"
    python3 - <<'PY' 2>&1
import importlib
for name in ("numpy", "cupy", "jax", "sympy", "h5py", "pydantic", "yaml", "pytest"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:  # report, never stop here
        print(name, "MISSING:", exc.__class__.__name__, exc)
PY
} >"$out/environment.txt"
cat "$out/environment.txt"

echo "== gpu tests (python3 -m pytest -m gpu -q)"
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/pytest_gpu.log"
tests_rc=${PIPESTATUS[0]}

left=$((290 - ($(date +%s) - start)))
[ "$left" -lt 60 ] && left=60
echo "== benchmark (full mode, ${left} s left)"
timeout "$left" python3 benchmarks/bench.py --out "$out" --budget-s $((left - 90 > 30 ? left - 90 : 30)) \
    2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}

# The quarter-dt reference at 256^3 (4x the steps) does not fit a 15-minute lease: the
# accuracy against it is measured at CPU sizes (RESULTS.md). Step costs first, then the
# 21-day run with whatever time is left before ~570 s.
echo "== imex cycle (issue 7): 21 days of chemoimmuno at 256^3 x 10 um"
left=$((570 - ($(date +%s) - start)))
[ "$left" -lt 60 ] && left=60
timeout "$left" python3 benchmarks/imex_cycle.py --out "$out" --no-reference 2>&1 | grep -v "^\s*$" \
    | tee "$out/imex_cycle.log"
imex_rc=${PIPESTATUS[0]}
[ "$imex_rc" -eq 124 ] && echo "imex cycle: stopped at the time limit; its step costs and projection are above"

echo
echo "================ summary (also in $out/summary.txt) ================"
cat "$out/summary.txt" 2>/dev/null || echo "(no summary: the benchmark did not finish, see $out/bench.log)"
tail -n 6 "$out/imex_cycle.log" 2>/dev/null
echo "gpu tests exit ${tests_rc}, benchmark exit ${bench_rc}, imex cycle exit ${imex_rc}, $(( $(date +%s) - start )) s in all"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$imex_rc" -eq 0 ]
