"""The energy score on spherical-harmonic coefficients, and fme's EnergyScoreLoss built on it.

Per (l, m) mode, with beta = 1 and the complex modulus (a bivariate energy score on (Re, Im)):

    ES = mean_e |x_e - y|  -  0.5 * mean_{i<j} |x_i - x_j|        (fair estimator)

The loss (fme 2026.10.0 ``EnergyScoreLoss``) weights m > 0 twice (the real SHT stores one of each
+-m pair), optionally multiplies by a whitening factor per (sample, channel, degree), sums over all
L*M slots and divides by 2*sqrt(L*M); the total is the mean over samples and channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .sht import LOSS_GRID, to_spectral

if TYPE_CHECKING:
    import torch


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


def energy_score_terms(gen_hat: torch.Tensor, target_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Skill E|X - y| and spread 0.5 E|X - X'| per mode, each (B, C, L, M); ES = skill - spread.

    skill = mean_e |X_e - y| and spread = 0.5 * mean_{i<j} |X_i - X_j|, with | . | the complex modulus.

    Args:
        gen_hat: complex SHT coefficients of the ensemble members, shape (B, E, C, L, M).
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).

    Returns:
        ``(skill, spread)``, two real tensors of shape (B, C, L, M); with E = 1 the spread is zeros.

    Raises:
        ValueError: either input is not a complex 5-d torch.Tensor, ``target_hat``'s ensemble dim is not
            1, or the batch, channel and spectral dims differ.
    """
    import torch

    _check_pair(gen_hat, target_hat)
    skill = (gen_hat - target_hat).abs().mean(dim=1)
    n_ens = gen_hat.shape[1]
    if n_ens == 1:
        return skill, torch.zeros_like(skill)
    i, j = torch.triu_indices(n_ens, n_ens, offset=1, device=gen_hat.device)
    spread = 0.5 * (gen_hat[:, i] - gen_hat[:, j]).abs().mean(dim=1)
    return skill, spread


def energy_score(gen_hat: torch.Tensor, target_hat: torch.Tensor) -> torch.Tensor:
    """Fair energy score (beta 1) per (sample, channel, l, m): (B, E, C, L, M) vs (B, 1, C, L, M) -> (B, C, L, M).

    ES = skill - spread of :func:`energy_score_terms`; unweighted and unnormalised (the loss's mode
    weights and scaling are applied by :func:`weighted_loss_terms`). A fair estimate, so it can be negative.

    Args:
        gen_hat: complex SHT coefficients of the ensemble members, shape (B, E, C, L, M).
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).

    Returns:
        A real tensor of shape (B, C, L, M).

    Raises:
        ValueError: the inputs are not complex 5-d tensors of matching shapes (see :func:`energy_score_terms`).
    """
    skill, spread = energy_score_terms(gen_hat, target_hat)
    return skill - spread


def mode_weights(n_l: int, n_m: int, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """fme's weights over (l, m): 1 for m = 0, 2 for m > 0 (the +-m pair of a real field).

    The m > l slots (zero coefficients) get weight 2 too, as in fme.

    Args:
        n_l: number of degrees L.
        n_m: number of orders M.
        device: the tensor's device; None: torch's default device.
        dtype: the tensor's dtype; None: float32.

    Returns:
        A tensor of shape (L, M).
    """
    import torch

    w = torch.full((n_l, n_m), 2.0, device=device, dtype=dtype or torch.float32)
    w[:, 0] = 1.0
    return w


def loss_scaling(n_l: int, n_m: int) -> float:
    """fme's normaliser 2*sqrt(L*M): every L*M slot counts, including the zero m > l ones.

    Args:
        n_l: number of degrees L.
        n_m: number of orders M.

    Returns:
        2 * sqrt(L * M).
    """
    return 2.0 * (n_l * n_m) ** 0.5


@dataclass
class EnergyScoreLossTerms:
    """An energy-score loss and where it comes from.

    Attributes:
        total: the loss, a 0-d tensor: the mean of ``per_sample_channel``.
        per_sample_channel: (B, C), each sample and channel's own term (what fme would report per
            channel if it did not broadcast to 6-D).
        per_degree: (C, L), the contribution of each channel and degree to ``total``, so
            ``per_degree.sum() == total``.
    """

    total: torch.Tensor
    per_sample_channel: torch.Tensor
    per_degree: torch.Tensor


def energy_score_loss_terms(gen_hat: torch.Tensor, target_hat: torch.Tensor, *, factor: torch.Tensor | None = None,
                            weight: float = 1.0) -> EnergyScoreLossTerms:
    """fme's EnergyScoreLoss from coefficients; ``factor`` (B, C, L, 1) is a whitening factor or None.

    :func:`energy_score` followed by :func:`weighted_loss_terms`.

    Args:
        gen_hat: complex SHT coefficients of the ensemble members, shape (B, E, C, L, M).
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).
        factor: a whitening factor of shape (B, C, L, 1) (e.g. ``SpectralWhitening.factor(target_hat)``);
            None (default): unwhitened.
        weight: a multiplier of every term (fme's ``energy_score_weight``); default 1.0.

    Returns:
        The loss and its breakdown per sample and channel and per channel and degree.

    Raises:
        ValueError: the coefficients are not complex 5-d tensors of matching shapes, or ``factor`` has
            the wrong shape.
    """
    return weighted_loss_terms(energy_score(gen_hat, target_hat), factor=factor, weight=weight)


def weighted_loss_terms(es: torch.Tensor, *, factor: torch.Tensor | None = None,
                        weight: float = 1.0) -> EnergyScoreLossTerms:
    """The loss from a per-mode energy score ``es`` (B, C, L, M): lets several whitening variants share one ES.

    Multiplies ``es`` by :func:`mode_weights`, by ``factor`` if given and by ``weight`` / :func:`loss_scaling`,
    and sums over m; ``per_sample_channel`` then sums over l, ``per_degree`` is the mean over samples
    divided by C, and ``total`` the mean of ``per_sample_channel``.

    Args:
        es: a per-mode energy score, shape (B, C, L, M), e.g. from :func:`energy_score`.
        factor: a whitening factor of shape (B, C, L, 1); None (default): unwhitened.
        weight: a multiplier of every term; default 1.0.

    Returns:
        The loss and its breakdown (see :class:`EnergyScoreLossTerms`).

    Raises:
        ValueError: ``factor`` is not of shape (B, C, L, 1) for ``es`` (B, C, L, M).
    """
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


def energy_score_loss(gen: torch.Tensor, target: torch.Tensor, *, whitening: Any = None,
                      grid: str = LOSS_GRID) -> torch.Tensor:
    """fme's energy-score loss on grid-space fields: gen (B, E, C, H, W), target (B, 1, C, H, W).

    Equals fme 2026.10.0 ``EnsembleLoss(crps_weight=0, energy_score_weight=1,
    energy_score_whitening=...)`` total. The whitening factor is computed from the target's coefficients.

    Args:
        gen: real ensemble members on the grid, shape (B, E, C, H, W).
        target: the real target on the grid, shape (B, 1, C, H, W).
        whitening: a :class:`SpectralWhitening`, a :class:`WhiteningConfig`, its fme dict form, a
            command-line string (anything :func:`~specprobe.spectral.whitening.as_whitening` accepts), or
            None (default): no whitening.
        grid: the SHT grid of the fields (default ``"legendre-gauss"``, fme's).

    Returns:
        The loss as a 0-d tensor.

    Raises:
        ValueError: the fields are not real 5-d tensors of matching shapes (target ensemble dim 1), or
            ``whitening`` is invalid.
    """
    from .whitening import as_whitening

    _check_pair(gen, target, complex_required=False)
    if gen.is_complex() or target.is_complex():
        raise ValueError("gen, target: expected real grid-space fields (B, E, C, H, W); use energy_score for coefficients")
    gen_hat, target_hat = to_spectral(gen, grid=grid), to_spectral(target, grid=grid)
    w = as_whitening(whitening)
    factor = w.factor(target_hat) if w is not None else None
    return energy_score_loss_terms(gen_hat, target_hat, factor=factor).total
