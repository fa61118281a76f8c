"""Per-degree power spectra of spherical-harmonic coefficients, in two labelled conventions.

With orthonormal harmonics and a real field, the coefficient stored at (l, m > 0) stands for the
+-m pair, so the physical power of degree l is |c_l0|^2 + 2 sum_{m>0} |c_lm|^2, and
sum_l P(l) = integral of f^2 over the unit sphere. fme's spectrum metric (used for
``smallest_scale_norm_bias``) sums |c_lm|^2 without doubling. Every result says which it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POWER_CONVENTIONS = {
    "physical": "P(l) = |c_l0|^2 + 2 sum_{m>0} |c_lm|^2 (ortho SHT; sum_l P(l) = integral of f^2 over the unit sphere)",
    "fme": "P(l) = sum_m |c_lm|^2, m > 0 not doubled (fme's power-spectrum metric)",
}


def degree_power(coeffs: torch.Tensor, *, convention: str = "physical") -> torch.Tensor:
    """Power per degree (..., L) of complex coefficients (..., L, M); see ``POWER_CONVENTIONS``.

    Args:
        coeffs: complex SHT coefficients, shape (..., L, M), orders m on the last axis.
        convention: ``"physical"`` (default; m > 0 counted twice, sum_l P(l) = integral of f^2 over the
            unit sphere for orthonormal harmonics) or ``"fme"`` (m > 0 not doubled, fme's spectrum metric).

    Returns:
        A real tensor of shape (..., L), in the real dtype of ``coeffs``.

    Raises:
        ValueError: ``convention`` is unknown, or ``coeffs`` is not a complex tensor with at least 2 dims.
    """
    import torch

    if convention not in POWER_CONVENTIONS:
        raise ValueError(f"convention: expected one of {tuple(POWER_CONVENTIONS)}, got {convention!r}")
    if not isinstance(coeffs, torch.Tensor) or not coeffs.is_complex():
        raise ValueError("coeffs: expected complex spectral coefficients (..., L, M)")
    if coeffs.ndim < 2:
        raise ValueError(f"coeffs: expected at least 2 dims (l, m), got shape {tuple(coeffs.shape)}")
    power = coeffs.real**2 + coeffs.imag**2
    if convention == "physical":
        power = torch.cat([power[..., :1], 2.0 * power[..., 1:]], dim=-1)
    return power.sum(dim=-1)
