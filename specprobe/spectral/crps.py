"""Grid-space fair CRPS and fme's EnsembleLoss (CRPS + energy score), for training and full-loss probes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .energy_score import energy_score_loss_terms
from .sht import LOSS_GRID, to_spectral

if TYPE_CHECKING:
    import torch


def crps(gen: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """fme's (almost-)fair CRPS per element: gen (B, E, ...), target (B, 1, ...) -> (B, ...).

    alpha = 1 is the fair estimator; alpha < 1 is the "almost fair" CRPS (arXiv 2412.15832):

        CRPS = mean_e |X_e - y|  -  (1 - (1 - alpha) / 2) * 0.5 * mean_{i<j} |X_i - X_j|

    Args:
        gen: ensemble members, shape (B, E, ...) (any trailing dims, e.g. (C, H, W)).
        target: the target, shape (B, 1, ...) with the same number of dims as ``gen``.
        alpha: the fairness parameter; 1.0 (default) gives the fair CRPS.

    Returns:
        The CRPS of every element, shape (B, ...) (the ensemble dim reduced). With E = 1 it is the
        absolute error |X - y| (no spread term).

    Raises:
        ValueError: ``gen`` has fewer than 2 dims, or ``target`` does not have ``gen``'s number of dims
            and an ensemble dim of size 1.
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


def ensemble_loss(gen: torch.Tensor, target: torch.Tensor, *, crps_weight: float = 1.0,
                  energy_score_weight: float = 0.0, whitening: Any = None, alpha: float = 1.0,
                  grid: str = LOSS_GRID) -> torch.Tensor:
    """fme's ``EnsembleLoss(...)`` total on (B, E, C, H, W) / (B, 1, C, H, W) normalised fields.

    total = crps_weight * mean of :func:`crps` over every element
    + energy_score_weight * the energy-score loss of the fields' SHT coefficients (see
    :func:`~specprobe.spectral.energy_score.energy_score_loss_terms`). A term whose weight is 0 is
    not computed.

    Args:
        gen: ensemble members on the grid, shape (B, E, C, H, W), normalised.
        target: the target on the grid, shape (B, 1, C, H, W), normalised.
        crps_weight: weight of the CRPS term (default 1.0); >= 0.
        energy_score_weight: weight of the energy-score term (default 0.0); >= 0.
        whitening: the energy score's spectral whitening, anything
            :func:`~specprobe.spectral.whitening.as_whitening` accepts; None (default): none.
        alpha: the CRPS fairness parameter (see :func:`crps`); 1.0 (default) is fair.
        grid: the SHT grid of the fields (default ``"legendre-gauss"``, fme's).

    Returns:
        The loss as a 0-d tensor.

    Raises:
        ValueError: a weight is negative or both are 0, or the fields / ``whitening`` are invalid.
    """
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
