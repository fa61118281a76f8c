"""(c) How probe time and memory grow with parameters, grid and K, against fme's own costs.

For each ACE-like checkpoint size (built with benchmarks/ace_like.py into a temporary folder), and
each K: probe seconds per sample (in-process, median of --repeats), K fme fwd+bwd seconds per
sample, and peak memory of a fresh probe process and of a fresh fme training-step process.

    python benchmarks/bench_scaling.py --sizes 32x64x32 45x90x64 64x128x64 --k 2 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ace_like import build_checkpoint  # noqa: E402
from bench_memory import run_fresh  # noqa: E402
from bench_time import measure  # noqa: E402


def scale(sizes, ks, *, n_samples=2, repeats=3, layers=8, memory=True, noise_embed_dim=32):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            nlat, nlon, embed = (int(v) for v in size.split("x"))
            path, n_params = build_checkpoint(os.path.join(tmp, f"{size}.tar"), nlat=nlat, nlon=nlon, embed_dim=embed,
                                              num_layers=layers, noise_embed_dim=noise_embed_dim)
            t = measure(str(path), ks=ks, n_samples=n_samples, repeats=repeats)
            step = run_fresh("fme-step", str(path), n_samples=n_samples) if memory else None
            for k in ks:
                row = {"size": size, "n_params": n_params, "k": k, "probe_s_per_sample": t["k"][k]["probe_s"] / n_samples,
                       "fme_s_per_sample": t["k"][k]["fme_s"] / n_samples, "time_ratio": t["k"][k]["ratio_median"]}
                if memory:
                    probe = run_fresh("probe", str(path), variants=k - 1, n_samples=n_samples)
                    row.update(probe_peak=probe["peak_bytes"], step_peak=step["peak_bytes"],
                               memory_ratio=probe["peak_bytes"] / step["peak_bytes"])
                rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["32x64x32", "45x90x64", "64x128x64"], help="NLATxNLONxEMBED")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--n-samples", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    a = ap.parse_args()
    print("| grid x embed | parameters | K | probe s/sample | K fme fwd+bwd s/sample | time ratio | probe peak GiB | fme step peak GiB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in scale(a.sizes, a.k, n_samples=a.n_samples, repeats=a.repeats, layers=a.layers):
        print(f"| {r['size']} | {r['n_params']:,} | {r['k']} | {r['probe_s_per_sample']:.3f} | {r['fme_s_per_sample']:.3f} | "
              f"{r['time_ratio']:.2f} | {r['probe_peak'] / 2**30:.2f} | {r['step_peak'] / 2**30:.2f} | {r['memory_ratio']:.2f} |")


if __name__ == "__main__":
    main()
