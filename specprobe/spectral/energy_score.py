"""The energy score on spherical-harmonic coefficients, and fme's EnergyScoreLoss built on it.

Per (l, m) mode, with beta = 1 and the complex modulus (a bivariate energy score on (Re, Im)):

    ES = mean_e |x_e - y|  -  0.5 * mean_{i<j} |x_i - x_j|        (fair estimator)

The loss (fme 2026.10.0 ``EnergyScoreLoss``) weights m > 0 twice (the real SHT stores one of each
+-m pair), optionally multiplies by a whitening factor per (sample, channel, degree), sums over all
L*M slots and divides by 2*sqrt(L*M); the total is the mean over samples and channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sht import LOSS_GRID, to_spectral


def _check_pair(gen_hat, target_hat, *, complex_required=True):
    import torch

    for name, t in (("gen_hat", gen_hat), ("target_hat", target_hat)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if complex_required and not t.is_complex():
            raise ValueError(f"{name}: expected complex spectral coefficients, got dtype {t.dtype}")
        if t.ndim != 5:
            raise ValueError(
                f"{name}: expected 5 dims (batch, ensemble, channel, l, m), got shape {tuple(t.shape)}"
            )
    if target_hat.shape[1] != 1:
        raise ValueError(f"target_hat: ensemble dim (1) must have size 1, got shape {tuple(target_hat.shape)}")
    if gen_hat.shape[0] != target_hat.shape[0] or gen_hat.shape[2:] != target_hat.shape[2:]:
        raise ValueError(
            f"gen_hat {tuple(gen_hat.shape)} and target_hat {tuple(target_hat.shape)}: "
            "expected equal batch, channel and spectral dims"
        )


def energy_score_terms(gen_hat, target_hat):
    """Skill E|X - y| and spread 0.5 E|X - X'| per mode, each (B, C, L, M); ES = skill - spread."""
    import torch

    _check_pair(gen_hat, target_hat)
    skill = (gen_hat - target_hat).abs().mean(dim=1)
    n_ens = gen_hat.shape[1]
    if n_ens == 1:
        return skill, torch.zeros_like(skill)
    i, j = torch.triu_indices(n_ens, n_ens, offset=1, device=gen_hat.device)
    spread = 0.5 * (gen_hat[:, i] - gen_hat[:, j]).abs().mean(dim=1)
    return skill, spread


def energy_score(gen_hat, target_hat):
    """Fair energy score (beta 1) per (sample, channel, l, m): (B, E, C, L, M) vs (B, 1, C, L, M) -> (B, C, L, M)."""
    skill, spread = energy_score_terms(gen_hat, target_hat)
    return skill - spread


def mode_weights(n_l: int, n_m: int, *, device=None, dtype=None):
    """fme's weights over (l, m): 1 for m = 0, 2 for m > 0 (the +-m pair of a real field)."""
    import torch

    w = torch.full((n_l, n_m), 2.0, device=device, dtype=dtype or torch.float32)
    w[:, 0] = 1.0
    return w


def loss_scaling(n_l: int, n_m: int) -> float:
    """fme's normaliser 2*sqrt(L*M): every L*M slot counts, including the zero m > l ones."""
    return 2.0 * (n_l * n_m) ** 0.5


@dataclass
class EnergyScoreLossTerms:
    """An energy-score loss and where it comes from.

    ``per_sample_channel`` (B, C): each sample and channel's own term (what fme would report per
    channel if it did not broadcast to 6-D); ``per_degree`` (C, L): contribution of each channel and
    degree to ``total``, so ``per_degree.sum() == total``.
    """

    total: "object"
    per_sample_channel: "object"
    per_degree: "object"


def energy_score_loss_terms(gen_hat, target_hat, *, factor=None, weight: float = 1.0) -> EnergyScoreLossTerms:
    """fme's EnergyScoreLoss from coefficients; ``factor`` (B, C, L, 1) is a whitening factor or None."""
    return weighted_loss_terms(energy_score(gen_hat, target_hat), factor=factor, weight=weight)


def weighted_loss_terms(es, *, factor=None, weight: float = 1.0) -> EnergyScoreLossTerms:
    """The loss from a per-mode energy score ``es`` (B, C, L, M): lets several whitening variants share one ES."""
    n_l, n_m = es.shape[-2:]
    weighted = es * mode_weights(n_l, n_m, device=es.device, dtype=es.dtype)
    if factor is not None:
        if tuple(factor.shape) != (*es.shape[:-1], 1):
            raise ValueError(f"factor: expected shape {(*es.shape[:-1], 1)}, got {tuple(factor.shape)}")
        weighted = weighted * factor
    weighted = weighted * (weight / loss_scaling(n_l, n_m))
    per_bcl = weighted.sum(dim=-1)  # (B, C, L)
    per_sample_channel = per_bcl.sum(dim=-1)
    per_degree = per_bcl.mean(dim=0) / per_bcl.shape[1]
    return EnergyScoreLossTerms(per_sample_channel.mean(), per_sample_channel, per_degree)


def energy_score_loss(gen, target, *, whitening=None, grid: str = LOSS_GRID):
    """fme's energy-score loss on grid-space fields: gen (B, E, C, H, W), target (B, 1, C, H, W).

    Equals fme 2026.10.0 ``EnsembleLoss(crps_weight=0, energy_score_weight=1,
    energy_score_whitening=...)`` total. ``whitening`` is a :class:`SpectralWhitening`, a
    :class:`WhiteningConfig`, its fme dict form, or None.
    """
    from .whitening import as_whitening

    _check_pair(gen, target, complex_required=False)
    if gen.is_complex() or target.is_complex():
        raise ValueError("gen, target: expected real grid-space fields (B, E, C, H, W); use energy_score for coefficients")
    gen_hat, target_hat = to_spectral(gen, grid=grid), to_spectral(target, grid=grid)
    w = as_whitening(whitening)
    factor = w.factor(target_hat) if w is not None else None
    return energy_score_loss_terms(gen_hat, target_hat, factor=factor).total
