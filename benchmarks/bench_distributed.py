"""Speed-up of ``torchrun --nproc-per-node N`` over one process, same probe, same numbers.

Runs ``specprobe grad-by-l`` (bundled model unless a checkpoint is given) once in one process and
once under torchrun with N ranks, alternating, --repeats times, and reports the median of
  wall    the whole command, start-up (python, torch import, process group) included
  probe   the engine's own time (provenance elapsed_s on rank 0: batches, reduction, summary)
On CPU each rank gets --threads threads (1 by default), so N ranks use N cores; on GPUs each rank
takes cuda:LOCAL_RANK. Prints a markdown table with the conditions (cores, load average).

    python benchmarks/bench_distributed.py --n-samples 16 --variants 4 --nproc 2 --repeats 3
    python benchmarks/bench_distributed.py CKPT --device cuda --nproc 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd, out: Path, env) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    result = json.loads((out / "result.json").read_text())
    return wall, result["provenance"]["elapsed_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--n-samples", type=int, default=16, help="the bundled sample holds 16")
    ap.add_argument("--variants", type=int, default=1, help="whitening variants besides the baseline")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    probe = ["grad-by-l", *([args.checkpoint] if args.checkpoint else []), "--n-samples", str(args.n_samples),
             "--batch-size", str(args.batch_size), "--device", args.device, "--quiet"]
    for i in range(args.variants):
        probe += ["--whitening", f"per_sample:gamma={round(0.2 + 0.8 * i / max(args.variants - 1, 1), 3)}"]
    if args.device == "cpu":
        probe += ["--threads", str(args.threads)]
    single = [sys.executable, "-m", "specprobe", *probe]
    multi = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
             "-m", "specprobe", *probe]
    times = {"1 process": [], f"{args.nproc} ranks": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for label, cmd in (("1 process", single), (f"{args.nproc} ranks", multi)):
                out = Path(tmp) / f"{i}_{label.replace(' ', '_')}"
                times[label].append(run([*cmd, "--out", str(out)], out, env))
    load_after = os.getloadavg()

    med = {k: (statistics.median(w for w, _ in v), statistics.median(p for _, p in v)) for k, v in times.items()}
    base_wall, base_probe = med["1 process"]
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"command: specprobe {' '.join(probe)} (x{args.repeats}, alternating; medians)\n")
    print("| run | wall s | probe s | wall speed-up | probe speed-up | runs (wall/probe) |")
    print("|---|---|---|---|---|---|")
    for label, (wall, prb) in med.items():
        runs = ", ".join(f"{w:.1f}/{p:.1f}" for w, p in times[label])
        print(f"| {label} | {wall:.1f} | {prb:.1f} | {base_wall / wall:.2f}x | {base_probe / prb:.2f}x | {runs} |")


if __name__ == "__main__":
    main()
