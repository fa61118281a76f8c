"""What the default ``specprobe lookahead`` sweep on the bundled model costs: the worker processes
against one process, measured in one run.

    python benchmarks/bench_lookahead.py               # the default sweep, parallel then serial
    python benchmarks/bench_lookahead.py --cold        # each run from an empty cache (data included)
    python benchmarks/bench_lookahead.py --args "--steps 2 --repeats 1 --gamma 0,1 --rollout-steps 2"   # a toy

Each run is a fresh ``python -m specprobe lookahead`` process (imports, model, data, rollouts and the
arms all counted): ``--workers N --threads 1`` (N: one per core) and ``--workers 1 --threads 1``.
Printed per run: wall time, CPU time (user + system of the process and its workers), the 1-minute
load average before and after (on a shared machine the wall time also holds other processes' time),
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


def comparable(result: dict) -> str:
    """The result without what may differ between runs: timings, process counts, cache flags, command line."""
    r = json.loads(json.dumps(result))
    r.pop("elapsed_s", None)
    r.pop("workers", None)
    r["provenance"] = {}
    for a in r["arms"]:
        a.pop("seconds", None)
        (a.get("rollout") or {}).pop("seconds", None)
    ro = r.get("rollout") or {}
    (ro.get("checkpoint") or {}).pop("seconds", None)
    (ro.get("rollout_set") or {}).pop("cached", None)
    (r["data"]["train"]).pop("cached", None)
    return json.dumps(r, sort_keys=True)


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
            print(f"workers {n} x 1 thread: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, load average "
                  f"{r['load_before']:.1f} -> {r['load_after']:.1f} on {cores} cores; {len(res['arms'])} arms of "
                  f"{res['settings']['steps']} steps, data {res['provenance'].get('data_seconds')} s "
                  f"({'cold' if a.cold else 'cache as found'})", flush=True)
    if len(runs) == 2:
        par, ser = runs
        same = comparable(par["result"]) == comparable(ser["result"])
        print(f"serial / parallel wall: {ser['wall_s'] / par['wall_s']:.2f}x "
              f"(CPU {ser['cpu_s']:.1f} s vs {par['cpu_s']:.1f} s); results identical: {same}")
        rec = par["result"]["recommendation"]
        print(rec["summary"])
        if not same:
            raise SystemExit("the parallel and serial results differ")


if __name__ == "__main__":
    main()
