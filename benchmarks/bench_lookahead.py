"""What a default ``specprobe lookahead`` on the bundled model costs: wall and CPU time, by phase.

    python benchmarks/bench_lookahead.py                 # default settings, cached training pairs
    python benchmarks/bench_lookahead.py --cold          # include generating the training pairs

CPU time (process user + system) is what the run needs; wall time on a shared machine also holds the
time other processes took. Prints both and the 1-minute load average, so a number is read with its
conditions. The acceptance target: defaults within 90 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="Generate the training pairs into an empty cache first.")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.cold:
        os.environ["SPECPROBE_CACHE"] = tempfile.mkdtemp(prefix="specprobe-bench-")
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    from specprobe.probing.lookahead import lookahead

    result = lookahead(threads=a.threads)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    arms = ", ".join(f"{x['name']} {x['seconds']:.1f} s" for x in result["arms"])
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
          f"threads {result['provenance']['cpu_threads']}")
    print(f"data {result['provenance']['data_seconds']:.1f} s (cached: {result['data']['train'].get('cached')}); "
          f"arms: {arms}")


if __name__ == "__main__":
    main()
