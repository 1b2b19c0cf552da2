#!/usr/bin/env bash
# Every GPU check of tumorsim in one command, for a machine with one GPU:
#   1. the `gpu`-marked tests (CuPy kernels against NumPy, the benchmark's GPU path);
#   2. benchmarks/imex_cycle.py at 256^3 x 10 um with the defaults (imex order 2, error control
#      rtol 0.05), the first day (the chemotherapy infusion), stepped beside a float64
#      reference at rtol 2.5e-3: field errors per species and the burden, PASS/FAIL;
#   3. the full benchmark (copy bandwidth, fused step and its peers at 128^3,
#      256^3, 384^3 float32 and 256^3 float64, the NumPy peers at 128^3, end-to-end runs
#      with snapshots and checkpoints, the largest-grid estimate), PASS/FAIL lines;
#   4. the same defaults over the whole 21 days: step costs and projected time only;
#   then prints the short table last.
#
# Files (at most 8, flat, for the device tool's $OUT): bench.json, bench.md, summary.txt,
# bench.log, pytest_gpu.log, environment.txt, imex_cycle.json, imex_cycle.log, under $OUT
# when set, else benchmarks/out/.
#
# Time (estimates: no GPU was available when this was written): hard limits of 150 s for
# the tests, 240 s for step 2, step 3 until 500 s from the start (its optional peers are
# skipped 90 s before that), step 4 until 570 s if 60 s are left. With 15 device minutes
# per session: run it once with timeout_s=600, then give the machine back.
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

# The accuracy target first: the defaults' fields within 2 % (burden 0.1 %) of a converged
# reference at 256^3 x 10 um, over the first day (the chemotherapy infusion, where the
# steps are shortest); at most 240 s (3 host set-ups of 256^3 included).
echo "== imex cycle: the defaults over day 0-1, beside a float64 reference (rtol 2.5e-3)"
timeout 240 python3 benchmarks/imex_cycle.py --out "$out" --end 1 --reference 2>&1 \
    | grep -v "^\s*$" | tee "$out/imex_cycle.log"
imex_rc=${PIPESTATUS[0]}
[ "$imex_rc" -eq 124 ] && echo "imex cycle: stopped at 240 s; what it measured is above and in imex_cycle.json"

left=$((500 - ($(date +%s) - start)))
[ "$left" -lt 60 ] && left=60
echo "== benchmark (full mode, ${left} s left)"
timeout "$left" python3 benchmarks/bench.py --out "$out" --budget-s $((left - 90 > 30 ? left - 90 : 30)) \
    2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}

# The defaults over the whole cycle: step costs and the projected 21 days only.
left=$((570 - ($(date +%s) - start)))
if [ "$left" -ge 60 ]; then
    echo "== imex cycle: the defaults at 256^3 over 21 days, step costs and projection (${left} s left)"
    timeout "$left" python3 benchmarks/imex_cycle.py --out "$out" --steps-only 2>&1 | grep -v "^\s*$" \
        | tee -a "$out/imex_cycle.log"
fi

echo
echo "================ summary (also in $out/summary.txt) ================"
cat "$out/summary.txt" 2>/dev/null || echo "(no summary: the benchmark did not finish, see $out/bench.log)"
grep -E "IMEX cycle|projected|imex run|reference|one imex step|field errors|accuracy" "$out/imex_cycle.log" 2>/dev/null
echo "gpu tests exit ${tests_rc}, benchmark exit ${bench_rc}, imex cycle exit ${imex_rc}, $(( $(date +%s) - start )) s in all"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$imex_rc" -eq 0 ]
