"""A stochastic torch-harmonics SFNO: the ensemble comes from noise, as in fme.

``StochasticSFNO`` wraps ``torch_harmonics.examples.models.SphericalFourierNeuralOperator`` (0.8.0).
Every call draws fresh isotropic noise fields for every row and feeds them to the SFNO as extra input
channels next to the (normalised) state, so repeating a sample E times along the batch gives E
different members, exactly how fme builds an ensemble (repeat-interleave, one noise draw per row).

fme's NoiseConditionedSFNO injects its noise through conditional layer norms instead; input channels
keep the network a plain torch-harmonics SFNO whose state dict and constructor arguments load without
specprobe. The spectral filters (``blocks.{i}.global_conv.weight``, (out, in, L) complex64) are the
same kind of per-degree weights either way.

With ``residual`` the SFNO predicts the normalised increment: output = state + SFNO(state, noise).
(torch-harmonics' own ``residual_prediction`` cannot be used: input and output channels differ.)

This module imports torch at the top; only lazily imported code uses it.
"""

from __future__ import annotations

import math

import torch

def build_sfno(args: dict):
    """The torch-harmonics SFNO from JSON-style constructor arguments (img_size as a list is fine)."""
    from torch_harmonics.examples.models import SphericalFourierNeuralOperator

    kwargs = dict(args)
    if "img_size" in kwargs:
        kwargs["img_size"] = tuple(kwargs["img_size"])
    sfno = SphericalFourierNeuralOperator(**kwargs)
    # The module does not keep all of its arguments (mlp_ratio, drop rates...): remember them for saving.
    sfno._specprobe_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return sfno


def noise_spectrum(lmax: int, slope: float):
    """Per-degree variance C_l of the noise a_lm, proportional to (l + 1)^slope, unit grid variance.

    With orthonormal harmonics a field's variance over the sphere is sum_l (2l + 1) C_l / (4 pi), so
    slope 0 gives C_l = 4 pi / lmax^2: fme's ``isotropic_noise``.
    """
    ell = torch.arange(lmax, dtype=torch.float64)
    c = (ell + 1.0) ** slope
    return c * (4.0 * math.pi / float(((2.0 * ell + 1.0) * c).sum()))


def isotropic_noise(n: int, channels: int, isht, *, slope: float, generator):
    """(n, channels, nlat, nlon) float32 fields: ISHT of random a_lm, m <= l, drawn from ``generator``.

    Re and Im of m > 0 coefficients are N(0, C_l / 2) each; m = 0 is real N(0, C_l); m > l is zero.
    One draw of shape (n, channels, L, M, 2) in row order: on CPU, row r's noise depends only on the
    generator state, not on n, so a sample's members do not change with the batch around them.
    """
    lmax, mmax = isht.lmax, isht.mmax
    sd = noise_spectrum(lmax, slope).sqrt().to(torch.float32)[:, None]  # (L, 1)
    ell, m = torch.arange(lmax)[:, None], torch.arange(mmax)[None, :]
    valid = (m <= ell).to(torch.float32)
    scale = sd * torch.where(m == 0, 1.0, math.sqrt(0.5)) * valid  # (L, M)
    z = torch.randn(n, channels, lmax, mmax, 2, generator=generator, device=generator.device)
    z[..., 0, 1] = 0.0  # m = 0 coefficients of a real field are real
    coeffs = torch.view_as_complex(z) * scale.to(z.device)
    return isht(coeffs.to(isht.pct.device))


class StochasticSFNO(torch.nn.Module):
    """state (N, C, H, W), normalised -> next state (N, C, H, W), normalised; noise from ``generator``."""

    def __init__(self, sfno_args: dict, *, n_state: int, n_noise: int, noise_slope: float = 0.0,
                 noise_lmax: int | None = None, residual: bool = True):
        super().__init__()
        from torch_harmonics.sht import InverseRealSHT  # the original class, never fme's fork

        self.sfno = build_sfno(sfno_args)
        if self.sfno.in_chans != n_state + n_noise or self.sfno.out_chans != n_state:
            raise ValueError(
                f"SFNO in_chans={self.sfno.in_chans}, out_chans={self.sfno.out_chans}: expected "
                f"{n_state} + {n_noise} noise and {n_state}"
            )
        nlat, nlon = self.sfno.img_size
        self.n_state, self.n_noise, self.residual = n_state, n_noise, residual
        self.noise_slope = float(noise_slope)
        self.noise_lmax = int(noise_lmax or nlat)
        # The transform's buffers are non-persistent: the saved weights stay the SFNO's own state dict.
        self.noise_isht = None if not n_noise else InverseRealSHT(
            nlat, nlon, lmax=self.noise_lmax, mmax=self.noise_lmax, grid=self.sfno.grid)

    def settings(self) -> dict | None:
        """The wrapper's part of the checkpoint (None: a plain, deterministic SFNO)."""
        if not self.n_noise and not self.residual:
            return None
        return {"kind": "input-noise", "n_noise": self.n_noise, "noise": "isotropic",
                "noise_lmax": self.noise_lmax, "noise_spectrum_slope": self.noise_slope,
                "residual": self.residual}

    def noise(self, n: int, generator):
        return isotropic_noise(n, self.n_noise, self.noise_isht, slope=self.noise_slope, generator=generator)

    def forward(self, x, generator):
        if self.n_noise:
            x_in = torch.cat((x, self.noise(x.shape[0], generator).to(x.dtype)), dim=1)
        else:
            x_in = x
        out = self.sfno(x_in)
        return x + out if self.residual else out
