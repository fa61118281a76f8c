#!/usr/bin/env bash
# GPU checks of issue 11, one prepared run (about 5-8 minutes on an H100/H200 class card):
#   (a) K = 2 / K = 8 probe time vs K fme fwd+bwd, (b) peak GPU memory vs one fme training step,
#   at 90x180 and 180x360 (embed 384, 8 layers, ACE-like); grad-by-l --device cuda on the bundled
#   model and an fme checkpoint; the memory refusal path; the per-pass breakdown with batched VJPs. Self-checking: exits non-zero, naming the
#   check, if any step fails. Results go to $OUT (or benchmarks/gpu_out) as gpu_results.txt.
#     bash benchmarks/gpu.sh            # from the repository root, with specprobe and fme installed
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUTDIR=${OUT:-benchmarks/gpu_out}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_results.txt"
WORK=$(mktemp -d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fail=0
check() { local name=$1; shift; echo "== $name: $*" | tee -a "$LOG"; if "$@" >>"$LOG" 2>&1; then echo "   ok" | tee -a "$LOG"; else echo "   FAILED: $name" | tee -a "$LOG"; fail=1; fi; }

: >"$LOG"
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; git rev-parse HEAD 2>/dev/null; } >>"$LOG" 2>&1
check cuda-available $PY -c "import torch; assert torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name())"

check build-90x180 $PY benchmarks/ace_like.py "$WORK/g90.tar" --nlat 90 --nlon 180 --embed 384
check build-180x360 $PY benchmarks/ace_like.py "$WORK/g180.tar" --nlat 180 --nlon 360 --embed 384

for g in g90 g180; do
  check "time-$g" $PY benchmarks/bench_time.py "$WORK/$g.tar" --device cuda --k 2 8 --n-samples 4 --repeats 3
  check "memory-$g" $PY benchmarks/bench_memory.py "$WORK/$g.tar" --device cuda --variants 1 7 --n-samples 2
  # F, B per variant and one batched backward of K cotangents (is_grads_batched): the GPU option of issue 11
  check "backward-$g" $PY benchmarks/bench_backward.py "$WORK/$g.tar" --device cuda --k 2 8 --repeats 3
done

# Target: a 180x360 embed-384 probe, K = 2, 4 samples, at most 3 s of probe work per sample.
check probe-seconds-per-sample-180x360 $PY - "$WORK/g180.tar" <<'PYEOF'
import sys, time, torch
from specprobe.models.registry import load_target
from specprobe.probing.engine import run_probe
t = load_target(sys.argv[1], device="cuda")
run_probe(t, variants=["per_sample"], n_samples=1)  # warm-up
torch.cuda.synchronize(); t0 = time.perf_counter()
run_probe(t, variants=["per_sample"], n_samples=4, n_ensemble=2)
torch.cuda.synchronize(); s = (time.perf_counter() - t0) / 4
print(f"180x360 embed 384, K = 2, 4 samples: {s:.2f} s per sample (target <= 3 s)")
assert s <= 3.0, "over the 3 s per sample target"
PYEOF

check cli-bundled-cuda specprobe grad-by-l --device cuda --out "$WORK/bundled" --quiet
check cli-fme-cuda specprobe grad-by-l "$WORK/g90.tar" --device cuda --n-samples 2 --out "$WORK/fme" --quiet

# The memory refusal: a forced tiny limit must give exit 2 and one line starting with "error:".
check refusal-one-line bash -c '
  SPECPROBE_MEMORY_LIMIT=1M specprobe grad-by-l '"$WORK"'/g90.tar --device cuda --n-samples 1 --out '"$WORK"'/refused --quiet 2>'"$WORK"'/err.txt
  rc=$?; cat '"$WORK"'/err.txt
  [ $rc -eq 2 ] && [ "$(grep -c "^error: this probe needs about" '"$WORK"'/err.txt)" -eq 1 ] && ! grep -q Traceback '"$WORK"'/err.txt'

rm -rf "$WORK"
echo "overall: $([ $fail -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$LOG"
exit $fail
