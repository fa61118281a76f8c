"""What the default ``specprobe lookahead`` sweep on the bundled model costs: the worker processes
against one process, measured in one run.

    python benchmarks/bench_lookahead.py               # the default sweep, parallel then serial
    python benchmarks/bench_lookahead.py --cold        # each run from an empty cache (data included)
    python benchmarks/bench_lookahead.py --args "--steps 2 --repeats 1 --gamma 0,1 --rollout-steps 2"   # a toy

Each run is a fresh ``python -m specprobe lookahead`` process (imports, model, data, rollouts and the
arms all counted): ``--workers N --threads 1`` (N: one per core) and ``--workers 1 --threads 1``.
Printed per run: wall time, CPU time (user + system of the process and its workers; with workers,
also each process's share: on idle cores the wall time is about the largest), the 1-minute load
average before and after (on a shared machine the wall time also holds other processes' time),
then the serial/parallel wall ratio and whether the two results are identical (they must be: every
arm is seeded from its batch order alone, and both runs use one thread per process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(workers: int, out: Path, extra: list[str], cache: str | None) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["SPECPROBE_CACHE"] = cache
    cmd = [sys.executable, "-m", "specprobe", "lookahead", "--out", str(out), "--workers", str(workers),
           "--threads", "1", "--quiet", *extra]
    load0, cpu0, t0 = os.getloadavg()[0], _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return {"workers": workers, "wall_s": wall, "cpu_s": cpu, "load_before": load0, "load_after": os.getloadavg()[0],
            "result": json.loads((out / "lookahead.json").read_text())}


_RUN_SPECIFIC = {"elapsed_s", "workers", "provenance", "seconds", "cached", "cache_file"}


def comparable(obj):
    """The result without what may differ between runs: timings, process counts, cache flags and paths."""
    if isinstance(obj, dict):
        return {k: comparable(v) for k, v in obj.items() if k not in _RUN_SPECIFIC}
    if isinstance(obj, list):
        return [comparable(v) for v in obj]
    return obj


def first_difference(a, b, path="result"):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in one"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
    elif a != b:
        return f"{path}: {str(a)[:60]} != {str(b)[:60]}"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="Each run generates its training pairs and rollout "
                    "reference into an empty cache.")
    ap.add_argument("--workers", type=int, default=None, help="Processes of the parallel run (default: one per core).")
    ap.add_argument("--args", default="", help="Extra `specprobe lookahead` options, e.g. a smaller sweep.")
    ap.add_argument("--serial", action=argparse.BooleanOptionalAction, default=True,
                    help="Also run the one-process baseline (default on).")
    a = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = a.workers or cores
    extra = shlex.split(a.args)
    runs = []
    with tempfile.TemporaryDirectory(prefix="specprobe-bench-") as tmp:
        for n in [workers] + ([1] if a.serial else []):
            cache = tempfile.mkdtemp(prefix=f"cache{n}-", dir=tmp) if a.cold else None
            r = run_once(n, Path(tmp) / f"w{n}", extra, cache)
            runs.append(r)
            res = r["result"]
            split = ""
            if res.get("workers"):
                w = res["workers"]["worker_cpu_s"]
                split = (f" (main process {res['provenance']['main_process_cpu_s']:.1f} s, worker"
                         f"{'s' if len(w) > 1 else ''} {', '.join(f'{x:.1f}' for x in w)} s: on {n} idle cores the "
                         f"wall would be about the largest)")
            print(f"workers {n} x 1 thread: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s{split}, load average "
                  f"{r['load_before']:.1f} -> {r['load_after']:.1f} on {cores} cores; {len(res['arms'])} arms of "
                  f"{res['settings']['steps']} steps, data {res['provenance'].get('data_seconds')} s "
                  f"({'cold' if a.cold else 'cache as found'})", flush=True)
    if len(runs) == 2:
        par, ser = runs
        diff = first_difference(comparable(par["result"]), comparable(ser["result"]))
        same = diff is None
        print(f"serial / parallel wall: {ser['wall_s'] / par['wall_s']:.2f}x "
              f"(CPU {ser['cpu_s']:.1f} s vs {par['cpu_s']:.1f} s); results identical: {same}")
        rec = par["result"]["recommendation"]
        print(rec["summary"])
        if not same:
            raise SystemExit(f"the parallel and serial results differ: {diff}")


if __name__ == "__main__":
    main()
