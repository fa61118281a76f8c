"""How much does the probe cost, relative to what it replaces and to a training step?

Measured in one process, on the same model, batches and seed (medians of --repeats runs):
  shared   specprobe's engine: one forward per batch, K variants backpropagated from it
  naive    K independent forward + backward passes (one per variant), the obvious alternative
  train    one training step of the same model on the same batch: forward, backward of the
           training loss (fme's EnsembleLoss recipe, CRPS 0.9 + ES 0.1), Adam step
Prints the ratios shared/naive and shared/train.

    python benchmarks/bench_probe.py [CKPT] --variants 4 --n-samples 4 --batch-size 4
"""

from __future__ import annotations

import argparse
import statistics
import time


def _time(fn, repeats):
    fn()  # warm-up: SHT caches, allocator
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    import torch

    from specprobe.models.registry import load_target
    from specprobe.probing.engine import run_probe
    from specprobe.spectral import ensemble_loss, energy_score_loss

    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--variants", type=int, default=4, help="whitening variants besides the baseline")
    ap.add_argument("--n-samples", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--n-ensemble", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    target = load_target(args.checkpoint)
    gammas = [round(0.2 + 0.8 * i / max(args.variants - 1, 1), 3) for i in range(args.variants)]
    variants = [f"per_sample:gamma={g}" for g in gammas]
    K = 1 + len(variants)
    tensors = [p.tensor for p in target.parameters()]
    batches = list(target.batches(None, n_samples=args.n_samples, batch_size=args.batch_size, seed=0))

    def shared():
        run_probe(target, variants=variants, n_samples=args.n_samples, n_ensemble=args.n_ensemble,
                  batch_size=args.batch_size)

    def naive():
        # Same per-sample gradients as the engine, but a fresh forward for each variant.
        for w in [None, *variants]:
            for i, batch in enumerate(batches):
                gen, tgt = target.forward(batch, n_ensemble=args.n_ensemble, seed=i)
                for s in range(gen.shape[0]):
                    loss = energy_score_loss(gen[s:s + 1], tgt[s:s + 1], whitening=w)
                    torch.autograd.grad(loss, tensors, retain_graph=s < gen.shape[0] - 1, allow_unused=True)

    opt = torch.optim.Adam(tensors, lr=1e-6)

    def train():
        for i, batch in enumerate(batches):
            opt.zero_grad()
            gen, tgt = target.forward(batch, n_ensemble=args.n_ensemble, seed=i)
            ensemble_loss(gen, tgt, crps_weight=0.9, energy_score_weight=0.1).backward()
            opt.step()

    state = [t.detach().clone() for t in tensors]
    t_shared = _time(shared, args.repeats)
    t_naive = _time(naive, args.repeats)
    t_train = _time(train, args.repeats)
    with torch.no_grad():
        for t, s in zip(tensors, state):
            t.copy_(s)
    print(f"model: {target.family}, grid {target.nlat}x{target.nlon}, {args.n_samples} samples, "
          f"batch {args.batch_size}, ensemble {args.n_ensemble}, K = {K} loss variants, torch threads "
          f"{torch.get_num_threads()}")
    print(f"shared forward probe : {t_shared:8.3f} s")
    print(f"naive K fwd+bwd      : {t_naive:8.3f} s   shared/naive = {t_shared / t_naive:.2f}")
    print(f"training steps       : {t_train:8.3f} s   shared/train = {t_shared / t_train:.2f} "
          f"(one probe of K = {K} variants costs {t_shared / t_train:.1f} training steps)")


if __name__ == "__main__":
    main()
