"""Where a probe's time goes, per sample, and the lowest time ratio one backward per variant allows.

Measures on one checkpoint, batch 1, the same sample and ensemble size, alternating A B A B:
  F      the probe's forward: the model's training forward, the loss SHT of generated and target fields
  B_all  one backward of one variant's loss to every parameter (what ``--other-params all`` does)
  B_spec one backward to the per-degree parameters only (``--other-params none`` / the whitened
         variants under ``baseline``)
  B_K    one batched backward of K variants' losses (``is_grads_batched``: K cotangents in one vmapped
         pass), checked equal to K single backwards
  fme    fme's training forward + EnsembleLoss + backward to every parameter (the bench_time baseline)
and prints the floor of bench_time's ratio, (F + K B') / (K fme), for K = 2 and 8: a probe that does
nothing but its forward and K backwards. Clock: process CPU time on CPU (one thread), wall with
synchronisation on CUDA.

    python benchmarks/bench_backward.py CKPT [--k 2 8] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def measure(checkpoint, *, ks=(2, 8), repeats=5, n_ensemble=2, device="cpu", threads=1) -> dict:
    import torch

    from specprobe.models.registry import load_target
    from specprobe.probing.engine import loss_steps
    from specprobe.spectral import WhiteningConfig, energy_score_terms, to_spectral, weighted_loss_terms

    torch.set_num_threads(threads)
    target = load_target(checkpoint, device=device)
    params = target.parameters()
    every = [p.tensor for p in params]
    spectral = [p.tensor for p in params if p.per_degree]
    batch = next(iter(target.batches(None, n_samples=1, batch_size=1, seed=0)))
    step_loss = target.fme_step_loss()
    cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    now = time.perf_counter if cuda else time.process_time
    kmax = max(ks)
    configs = [WhiteningConfig()] + [WhiteningConfig.parse(f"per_sample:gamma={0.2 + 0.1 * i:.1f}") for i in range(kmax - 1)]

    def forward():
        (gen, tgt, _), = loss_steps(target, batch, n_ensemble=n_ensemble, seed=0)
        gen_hat, tgt_hat = to_spectral(gen, grid=target.loss_grid), to_spectral(tgt, grid=target.loss_grid)
        skill, spread = energy_score_terms(gen_hat, tgt_hat)
        return gen_hat, tgt_hat, skill - spread

    def losses(tgt_hat, es, k):
        out = []
        for cfg in configs[:k]:
            w = cfg.build()
            factor = w.factor(tgt_hat) if w is not None else None
            out.append(weighted_loss_terms(es, factor=factor, weight=1.0).per_sample_channel.mean(dim=1)[0])
        return out

    def timed(fn):
        sync()
        t0 = now()
        out = fn()
        sync()
        return now() - t0, out

    def fme_pass():
        gen, tgt = target.generate(batch, n_ensemble=n_ensemble, seed=0)
        torch.autograd.grad(step_loss(gen, tgt, step=0).total(), every, allow_unused=True)

    rows = {"F": [], "B_all": [], "B_spec": [], "fme": []}
    rows.update({f"B_batched_{k}": [] for k in ks})
    check = {}
    forward(), fme_pass()  # warm-up: transform caches, allocator
    for _ in range(repeats):
        t, (gen_hat, tgt_hat, es) = timed(forward)
        rows["F"].append(t)
        ls = losses(tgt_hat, es, kmax)
        rows["B_all"].append(timed(lambda: torch.autograd.grad(ls[0], every, retain_graph=True, allow_unused=True))[0])
        rows["B_spec"].append(timed(lambda: torch.autograd.grad(ls[0], spectral, retain_graph=True))[0])
        for k in ks:
            eye = torch.eye(k, device=gen_hat.device, dtype=ls[0].dtype)
            t, batched = timed(lambda: torch.autograd.grad(torch.stack(ls[:k]), spectral, grad_outputs=eye,
                                                           is_grads_batched=True, retain_graph=True))
            rows[f"B_batched_{k}"].append(t)
            if k not in check:  # the batched gradients are the K single ones
                single = torch.autograd.grad(ls[k - 1], spectral, retain_graph=True)
                check[k] = max(float((b[k - 1] - s).abs().max() / s.abs().max().clamp_min(1e-30))
                               for b, s in zip(batched, single))
        gen_hat = tgt_hat = es = ls = batched = None  # this graph goes before the fme pass
        rows["fme"].append(timed(fme_pass)[0])
    med = {k: statistics.median(v) for k, v in rows.items()}
    floors = {}
    for k in ks:
        fme = k * med["fme"]
        floors[k] = {"all": (med["F"] + k * med["B_all"]) / fme,
                     "baseline": (med["F"] + med["B_all"] + (k - 1) * med["B_spec"]) / fme,
                     "none": (med["F"] + k * med["B_spec"]) / fme,
                     "batched_spectral": (med["F"] + med[f"B_batched_{k}"]) / fme}
    return {"checkpoint": str(checkpoint), "device": str(device), "threads": torch.get_num_threads(),
            "n_params": sum(t.numel() for t in every), "n_ensemble": n_ensemble, "repeats": repeats,
            "seconds": med, "floor_ratio": floors, "batched_max_rel_diff": check}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="an fme checkpoint (the baseline is fme's own training pass)")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-ensemble", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    r = measure(a.checkpoint, ks=a.k, repeats=a.repeats, n_ensemble=a.n_ensemble, device=a.device, threads=a.threads)
    s = r["seconds"]
    print(f"{r['checkpoint']}: {r['n_params']:,} parameters, {r['device']}, {r['threads']} thread(s), "
          f"median of {r['repeats']}")
    print("  per sample: " + ", ".join(f"{k} {v:.3f} s" for k, v in s.items()))
    print(f"  B_all / F = {s['B_all'] / s['F']:.2f}, B_spec / B_all = {s['B_spec'] / s['B_all']:.2f}, "
          f"fme / (F + B_all) = {s['fme'] / (s['F'] + s['B_all']):.2f}")
    for k, f in r["floor_ratio"].items():
        print(f"  K = {k}: lowest possible probe / fme ratio: all {f['all']:.2f}, baseline {f['baseline']:.2f}, "
              f"none {f['none']:.2f}, one batched backward (spectral) {f['batched_spectral']:.2f}; "
              f"batched vs single max rel diff {r['batched_max_rel_diff'][k]:.1e}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
