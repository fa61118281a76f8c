"""Whole-process wall time and peak memory of CLI commands: (d) the bundled demo, (e) ``--help``.

Each command runs ``--runs`` times after one warm-up run, as a child process; wall time from the
clock, peak resident set from the kernel (``wait4`` rusage of that child). Prints min/median/max.

    python benchmarks/bench_cli.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def _run(cmd) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)


def commands(out_dir) -> dict:
    exe = shutil.which("specprobe") or os.path.join(os.path.dirname(sys.executable), "specprobe")
    return {"help": [exe, "--help"],
            "demo": [exe, "grad-by-l", "--device", "cpu", "--out", os.path.join(out_dir, "demo"), "--quiet"]}


def measure(names=("help", "demo"), runs=5) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(tmp)
        for name in names:
            _run(cmds[name])  # warm-up: page cache, bytecode
            rows = [_run(cmds[name]) for _ in range(runs)]
            if any(code != 0 for _, _, code in rows):
                raise RuntimeError(f"{' '.join(cmds[name])} exited with {[c for _, _, c in rows]}")
            walls, peaks = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
            out[name] = {"command": " ".join(cmds[name]), "wall_s": [walls[0], statistics.median(walls), walls[-1]],
                         "peak_bytes": [peaks[0], statistics.median(peaks), peaks[-1]]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=["help", "demo"], nargs="+", default=["help", "demo"])
    a = ap.parse_args()
    for name, r in measure(a.only, a.runs).items():
        w, p = r["wall_s"], r["peak_bytes"]
        print(f"{name}: wall min/median/max {w[0]:.2f}/{w[1]:.2f}/{w[2]:.2f} s, peak RSS median {p[1] / 2**20:.0f} MiB "
              f"({a.runs} runs): {r['command']}")


if __name__ == "__main__":
    main()
