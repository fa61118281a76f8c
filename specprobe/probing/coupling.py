"""Loss-band x parameter-degree coupling: how much does a small-scale loss reach small-scale weights?

The energy-score loss is a sum over (l, m) terms and the whitening factor is detached, so the loss
restricted to one band of loss degrees is an exact piece of the total: backpropagating each band
separately and binning the filter gradients by degree gives a matrix whose rows (as tensors, before
norms) sum to the full gradient.
"""

from __future__ import annotations

import numpy as np

from ..spectral import WhiteningConfig, bin_by_degree, energy_score, parse_variants, to_spectral, weighted_loss_terms
from .accumulate import rss
from .engine import loss_steps

SCHEMA = "specprobe.coupling/1"


def loss_bands(n_degrees: int, n_bands: int) -> list[tuple[int, int]]:
    """Split 0..L-1 into n contiguous bands (inclusive ranges) covering every degree once."""
    if not 1 <= n_bands <= n_degrees:
        raise ValueError(f"n_bands: expected 1..{n_degrees}, got {n_bands}")
    edges = np.linspace(0, n_degrees, n_bands + 1).round().astype(int)
    return [(int(a), int(b) - 1) for a, b in zip(edges[:-1], edges[1:])]


def coupling_gradients(target, *, data=None, variants=("per_sample",), n_samples=4, n_ensemble=2,
                       batch_size=1, seed=0, n_bands=8, shard=None):
    """Summed gradients {variant: {"bands": [[per-param grad]], "full": [per-param grad]}} and metadata.

    ``shard`` (distributed runs): this process takes the batches ``shard.takes(i)`` accepts and the
    sums are then added over processes (the per-batch seed depends on the batch index alone).
    """
    import torch

    configs: list[WhiteningConfig] = parse_variants(variants)
    params = [p for p in target.parameters() if p.per_degree]
    n_degrees = max(p.n_degrees for p in params)
    bands = loss_bands(n_degrees, n_bands)
    tensors = [p.tensor for p in params]
    sums = {c.name: {"bands": [[torch.zeros_like(t) for t in tensors] for _ in bands],
                     "full": [torch.zeros_like(t) for t in tensors]} for c in configs}
    for batch_index, batch in enumerate(target.batches(data, n_samples=n_samples, batch_size=batch_size, seed=seed)):
        if shard is not None and not shard.takes(batch_index):
            continue
        # A training rollout (fme --n-forward-steps) contributes each loss step with its step weight.
        steps = []
        for gen, tgt, weight in loss_steps(target, batch, n_ensemble=n_ensemble, seed=seed * 1_000_003 + batch_index):
            tgt_hat = to_spectral(tgt, grid=target.loss_grid)
            steps.append((weight, tgt_hat, energy_score(to_spectral(gen, grid=target.loss_grid), tgt_hat)))
        share = gen.shape[0] / n_samples  # per_degree is a batch mean; weight it into the mean over all samples
        for cfg in configs:
            w = cfg.build()
            per_l = 0
            for weight, tgt_hat, es in steps:  # es is shared by every variant
                terms = weighted_loss_terms(es, factor=w.factor(tgt_hat) if w else None)
                per_l = per_l + weight * terms.per_degree.sum(dim=0) * share  # (L,)
            pieces = [per_l[lo: hi + 1].sum() for lo, hi in bands] + [per_l.sum()]
            for k, piece in enumerate(pieces):
                grads = torch.autograd.grad(piece, tensors, retain_graph=True, allow_unused=True)
                acc = sums[cfg.name]["full"] if k == len(bands) else sums[cfg.name]["bands"][k]
                for a, g in zip(acc, grads):
                    if g is not None:
                        a += g
        # Drop this batch's graph before the next forward, so peak memory never holds two graphs.
        del gen, tgt, steps, tgt_hat, es, terms, per_l, pieces, piece, grads
    if shard is not None:
        shard.sum_tensors([t for s in sums.values() for group in [*s["bands"], s["full"]] for t in group])
    return sums, params, bands, n_degrees


def run_coupling(target, **kwargs) -> dict:
    sums, params, bands, n_degrees = coupling_gradients(target, **kwargs)

    def curve(grads):
        return rss([bin_by_degree(g, p.degree_axis).cpu().numpy() for g, p in zip(grads, params)
                    if p.n_degrees == n_degrees])

    out = {}
    for name, s in sums.items():
        matrix = np.stack([curve(g) for g in s["bands"]])
        out[name] = {"matrix": matrix.tolist(), "full": curve(s["full"]).tolist(),
                     "diagonal_share": _diagonal_share(matrix, bands)}
    return {
        "schema": SCHEMA,
        "degrees": list(range(n_degrees)),
        "loss_bands": [{"lo": lo, "hi": hi} for lo, hi in bands],
        "variants": out,
        "convention": "matrix[i][l]: L2 norm at parameter degree l (root-sum-square over layers) of the gradient "
                      "of the energy-score loss restricted to loss degrees in band i",
    }


def _diagonal_share(matrix: np.ndarray, bands) -> list[float]:
    """Per loss band: the fraction of its gradient (sum over l of the row) that lands in its own degrees."""
    shares = []
    for i, (lo, hi) in enumerate(bands):
        row = matrix[i]
        total = float(np.nansum(row))
        shares.append(float(np.nansum(row[lo: hi + 1]) / total) if total > 0 else float("nan"))
    return shares
