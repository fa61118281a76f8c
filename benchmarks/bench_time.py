"""Time of a K-variant probe against K of fme's own training forward+backward passes, one process.

Same checkpoint, same samples (batch 1), same ensemble size. The probe is ``run_probe`` with K - 1
whitening variants (one forward per sample, K backwards); the baseline is what K separate
training runs would cost: K x (fme's training forward ``TrainStepper`` order, fme's EnsembleLoss
StepLoss, backward), over the same samples. The two are timed alternately (A B A B ...), so drift of
a shared machine hits both; each pair gives a ratio, and the median and range of the ratios are
printed. On CPU the clock is the process's CPU time (one torch thread): on a shared machine it is
what the work cost, where wall time also counts the waits for a core (--clock wall to change).

    python benchmarks/bench_time.py CKPT --k 2 8 --n-samples 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def variants(k: int) -> list[str]:
    return [f"per_sample:gamma={round(0.2 + 0.8 * i / max(k - 2, 1), 3)}" for i in range(k - 1)]


def measure(checkpoint, *, ks=(2, 8), n_samples=8, n_ensemble=2, repeats=5, device="cpu", threads=1,
            other_params="all", clock=None) -> dict:
    import torch

    from specprobe.models.registry import load_target
    from specprobe.probing.engine import run_probe

    torch.set_num_threads(threads)
    target = load_target(checkpoint, device=device)
    tensors = [p.tensor for p in target.parameters()]
    batches = list(target.batches(None, n_samples=n_samples, batch_size=1, seed=0))
    step_loss = target.fme_step_loss()  # energy score, as the probe's default loss
    cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = clock or ("wall" if cuda else "cpu")
    now = time.perf_counter if clock == "wall" else time.process_time

    def fme_passes(k):
        for _ in range(k):
            for i, batch in enumerate(batches):
                gen, tgt = target.generate(batch, n_ensemble=n_ensemble, seed=i)
                grads = torch.autograd.grad(step_loss(gen, tgt, step=0).total(), tensors, allow_unused=True)
                del gen, tgt, grads

    def probe(k):
        run_probe(target, variants=variants(k), n_samples=n_samples, n_ensemble=n_ensemble, batch_size=1,
                  other_params=other_params)

    def timed(fn, k):
        sync()
        t0 = now()
        fn(k)
        sync()
        return now() - t0

    out = {"checkpoint": str(checkpoint), "n_params": sum(t.numel() for t in tensors), "grid": [target.nlat, target.nlon],
           "n_samples": n_samples, "n_ensemble": n_ensemble, "repeats": repeats, "threads": torch.get_num_threads(),
           "device": str(device), "other_params": other_params, "clock": clock, "k": {}}
    probe(2), fme_passes(1)  # warm-up: transform caches, allocator
    for k in ks:
        pairs = [(timed(probe, k), timed(fme_passes, k)) for _ in range(repeats)]
        ratios = sorted(a / b for a, b in pairs)
        out["k"][k] = {"probe_s": statistics.median(a for a, _ in pairs), "fme_s": statistics.median(b for _, b in pairs),
                       "ratio_median": statistics.median(ratios), "ratio_min": ratios[0], "ratio_max": ratios[-1]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 8], help="loss variants, baseline included")
    ap.add_argument("--n-samples", type=int, default=8)
    ap.add_argument("--n-ensemble", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--other-params", default="all", choices=["all", "baseline", "none"])
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None, help="default: cpu time on CPU, wall on CUDA")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = measure(a.checkpoint, ks=a.k, n_samples=a.n_samples, n_ensemble=a.n_ensemble, repeats=a.repeats,
                device=a.device, threads=a.threads, other_params=a.other_params,
                clock=a.clock)
    if a.json:
        print(json.dumps(r))
        return
    print(f"{r['checkpoint']}: {r['n_params']:,} parameters, grid {r['grid'][0]}x{r['grid'][1]}, {r['n_samples']} samples, "
          f"batch 1, ensemble {r['n_ensemble']}, {r['threads']} thread(s), {r['device']}, {r['repeats']} pairs, other_params {r['other_params']}, {r['clock']} clock")
    for k, v in r["k"].items():
        print(f"K = {k}: probe {v['probe_s']:.3f} s, {k} fme fwd+bwd {v['fme_s']:.3f} s, ratio median "
              f"{v['ratio_median']:.2f} (min {v['ratio_min']:.2f}, max {v['ratio_max']:.2f})")


if __name__ == "__main__":
    main()
