"""Grid-space fair CRPS and fme's EnsembleLoss (CRPS + energy score), for training and full-loss probes."""

from __future__ import annotations

from .energy_score import energy_score_loss_terms
from .sht import LOSS_GRID, to_spectral


def crps(gen, target, *, alpha: float = 1.0):
    """fme's (almost-)fair CRPS per element: gen (B, E, ...), target (B, 1, ...) -> (B, ...).

    alpha = 1 is the fair estimator; alpha < 1 is the "almost fair" CRPS (arXiv 2412.15832).
    """
    import torch

    if gen.ndim < 2 or target.ndim != gen.ndim or target.shape[1] != 1:
        raise ValueError(f"gen {tuple(gen.shape)}, target {tuple(target.shape)}: expected (B, E, ...) and (B, 1, ...)")
    skill = (gen - target).abs().mean(dim=1)
    n_ens = gen.shape[1]
    if n_ens == 1:
        return skill
    i, j = torch.triu_indices(n_ens, n_ens, offset=1, device=gen.device)
    spread = 0.5 * (gen[:, i] - gen[:, j]).abs().mean(dim=1)
    return skill - (1.0 - (1.0 - alpha) / 2.0) * spread


def ensemble_loss(gen, target, *, crps_weight: float = 1.0, energy_score_weight: float = 0.0,
                  whitening=None, alpha: float = 1.0, grid: str = LOSS_GRID):
    """fme's ``EnsembleLoss(...)`` total on (B, E, C, H, W) / (B, 1, C, H, W) normalised fields."""
    from .whitening import as_whitening

    if crps_weight < 0 or energy_score_weight < 0 or crps_weight + energy_score_weight <= 0:
        raise ValueError(
            f"crps_weight, energy_score_weight: expected non-negative with a positive sum, got {crps_weight}, {energy_score_weight}"
        )
    total = 0.0
    if crps_weight > 0:
        total = total + crps_weight * crps(gen, target, alpha=alpha).mean()
    if energy_score_weight > 0:
        gen_hat, target_hat = to_spectral(gen, grid=grid), to_spectral(target, grid=grid)
        w = as_whitening(whitening)
        factor = w.factor(target_hat) if w is not None else None
        total = total + energy_score_loss_terms(gen_hat, target_hat, factor=factor, weight=energy_score_weight).total
    return total
