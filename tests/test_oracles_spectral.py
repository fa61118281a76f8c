"""The spectral core against other people's numbers: fme 2026.10.0, scoringrules 0.9.0, ducc0."""

import numpy as np
import pytest
import torch

from conftest import require
from specprobe import spectral as sp


# ---------------------------------------------------------------- scoringrules: the energy score
def test_energy_score_equals_scoringrules_published_vector():
    sr = require("scoringrules")
    obs = np.array([0.2743836, 0.8146400])
    members = np.array([[0.79546742, 0.02461368], [0.4777960, 0.7584595],
                        [0.2164079, 0.3181810], [0.5409873, 0.1319422]])
    # One (l, m) mode: (Re, Im) pairs as complex numbers; B = C = L = M = 1.
    gen = torch.tensor(members[:, 0] + 1j * members[:, 1], dtype=torch.complex128).reshape(1, 4, 1, 1, 1)
    tgt = torch.tensor(obs[0] + 1j * obs[1], dtype=torch.complex128).reshape(1, 1, 1, 1, 1)
    ours = sp.energy_score(gen, tgt).item()
    assert ours == pytest.approx(float(sr.es_ensemble(obs, members, estimator="fair")), abs=1e-12)
    assert ours == pytest.approx(0.3274585, abs=5e-7)  # the value scoringrules publishes
    skill, spread = sp.energy_score_terms(gen, tgt)
    # The "nrg" (non-fair) estimator divides the spread by E^2 instead of E(E-1).
    nrg = skill.item() - spread.item() * (4 - 1) / 4
    assert nrg == pytest.approx(0.3949793, abs=5e-7)


@pytest.mark.parametrize("n_ens", [2, 3, 5])
def test_energy_score_per_mode_equals_scoringrules(n_ens):
    sr = require("scoringrules")
    rng = np.random.default_rng(n_ens)
    gen = torch.tensor(rng.normal(size=(2, n_ens, 3, 4, 5)) + 1j * rng.normal(size=(2, n_ens, 3, 4, 5)))
    tgt = torch.tensor(rng.normal(size=(2, 1, 3, 4, 5)) + 1j * rng.normal(size=(2, 1, 3, 4, 5)))
    ours = sp.energy_score(gen, tgt).numpy()
    # scoringrules: obs (..., D), fct (..., M, D); move our ensemble axis next to (Re, Im).
    fct = np.stack([gen.real.numpy(), gen.imag.numpy()], -1).transpose(0, 2, 3, 4, 1, 5)
    obs = np.stack([tgt.real.numpy(), tgt.imag.numpy()], -1)[:, 0]
    ref = sr.es_ensemble(obs, fct, m_axis=-2, v_axis=-1, estimator="fair")
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- fme: the loss and whitening
def _fme_total(gen, target, whitening_kwargs):
    require("fme")
    from fme.core.loss import EnsembleLoss, SpectralWhiteningConfig
    from fme.core.loss import LossOutput
    import torch_harmonics

    nlat, nlon = gen.shape[-2:]
    sht = torch_harmonics.RealSHT(nlat, nlon, grid="legendre-gauss")  # fme's fork, as fme trains
    whitening = SpectralWhiteningConfig(**whitening_kwargs).build() if whitening_kwargs else None
    loss = EnsembleLoss(crps_weight=0.0, energy_score_weight=1.0, sht=sht, energy_score_whitening=whitening)
    return LossOutput(loss(gen, target), channel_names=[f"c{i}" for i in range(gen.shape[2])]).total()


def _red_fields(shape, slope=-2.0, seed=0, dtype=torch.float32):
    """Grid fields with a red power-law spectrum, so whitening has something to do."""
    g = torch.Generator().manual_seed(seed)
    *lead, nlat, nlon = shape
    from torch_harmonics.sht import InverseRealSHT

    isht = InverseRealSHT(nlat, nlon, grid="legendre-gauss").double()
    L, M = isht.lmax, isht.mmax
    coef = torch.complex(torch.randn(*lead, L, M, generator=g, dtype=torch.float64),
                         torch.randn(*lead, L, M, generator=g, dtype=torch.float64))
    ell = torch.arange(L, dtype=torch.float64).clamp_min(1).unsqueeze(-1)
    coef = coef * ell ** (slope / 2)
    return isht(coef).to(dtype)


CASES = [(8, 16, 1), (12, 24, 2), (16, 32, 4), (15, 30, 2)]
WHITENINGS = [None, {"kind": "per_sample", "exponent": 0.5, "eps_frac": 0.02},
              {"kind": "per_sample", "exponent": 1.0, "eps_frac": 0.1},
              {"kind": "per_sample", "exponent": 0.5, "eps_frac": 0.1},
              {"kind": "per_sample", "exponent": 1.0, "eps_frac": 0.02}]


@pytest.mark.parametrize("nlat,nlon,n_ens", CASES)
@pytest.mark.parametrize("whitening", WHITENINGS, ids=["none", "g0.5e0.02", "g1e0.1", "g0.5e0.1", "g1e0.02"])
def test_loss_total_and_gradient_equal_fme(nlat, nlon, n_ens, whitening):
    target = _red_fields((2, 1, 3, nlat, nlon), seed=nlat)
    gen = (target + 0.3 * _red_fields((2, n_ens, 3, nlat, nlon), slope=-1.0, seed=nlat + 1)).requires_grad_(True)
    gen_ref = gen.detach().clone().requires_grad_(True)

    ours = sp.energy_score_loss(gen, target, whitening=sp.WhiteningConfig(**whitening) if whitening else None)
    ref = _fme_total(gen_ref, target, whitening)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)

    (g_ours,) = torch.autograd.grad(ours, gen)
    (g_ref,) = torch.autograd.grad(ref, gen_ref)
    scale = g_ref.abs().max()
    assert ((g_ours - g_ref).abs().max() / scale).item() <= 1e-5


@pytest.mark.parametrize("gamma,eps_frac", [(0.5, 0.02), (1.0, 0.02), (0.5, 0.1), (1.0, 0.1), (0.2, 0.05)])
def test_whitening_factor_equals_fme(gamma, eps_frac):
    require("fme")
    from fme.core.loss import SpectralWhitening as FmeWhitening

    target_hat = sp.to_spectral(_red_fields((3, 1, 2, 16, 32), seed=7))
    ours = sp.whitening_factor(target_hat, gamma=gamma, eps_frac=eps_frac)
    ref = FmeWhitening(eps_frac=eps_frac, exponent=gamma).factor(target_hat)
    assert ours.shape == ref.shape == (3, 2, 16, 1)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)


def test_config_errors_match_fme():
    require("fme")
    from fme.core.loss import SpectralWhiteningConfig

    bad = [dict(kind="bogus"), dict(kind="none", exponent=0.5), dict(kind="none", eps_frac=0.1),
           dict(kind="per_sample", exponent=0.0), dict(kind="per_sample", exponent=1.5),
           dict(kind="per_sample", eps_frac=0.0), dict(kind="per_sample", eps_frac=-1.0)]
    for kwargs in bad:
        with pytest.raises((ValueError, NotImplementedError)) as fme_err:
            SpectralWhiteningConfig(**kwargs)
        with pytest.raises(fme_err.type):  # the same exception type fme raises (ours also is a ValueError)
            sp.WhiteningConfig(**kwargs)
    good = sp.WhiteningConfig(kind="per_sample")
    ref = SpectralWhiteningConfig(kind="per_sample")
    assert (good.exponent, good.eps_frac) == (ref.exponent, ref.eps_frac) == (0.5, 0.02)


def test_full_ensemble_loss_equals_fme():
    require("fme")
    from fme.core.loss import EnsembleLoss, LossOutput
    import torch_harmonics

    target = _red_fields((2, 1, 3, 16, 32), seed=3)
    gen = target + 0.5 * _red_fields((2, 2, 3, 16, 32), slope=-0.5, seed=4)
    sht = torch_harmonics.RealSHT(16, 32, grid="legendre-gauss")
    ref = LossOutput(EnsembleLoss(0.9, 0.1, sht=sht, almost_fair_crps_alpha=0.95)(gen, target), ["a", "b", "c"]).total()
    ours = sp.ensemble_loss(gen, target, crps_weight=0.9, energy_score_weight=0.1, alpha=0.95)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


# ---------------------------------------------------------------- ducc0: SHT and degree power
# Only Legendre-Gauss (the loss grid): measured here, torch-harmonics 0.8.0 "equiangular" analysis
# differs from ducc0 "CC" by up to 3e-3 even for a field band-limited to l < 6, so it is no oracle.
@pytest.mark.parametrize("grid,ducc_geometry", [("legendre-gauss", "GL")])
def test_degree_power_equals_ducc0(grid, ducc_geometry):
    ducc0 = require("ducc0")
    nlat, nlon = 24, 48
    rng = np.random.default_rng(1)
    field = _red_fields((nlat, nlon), seed=11, dtype=torch.float64).numpy() + 0.1 * rng.normal(size=(nlat, nlon))
    L = nlat
    alm = ducc0.sht.experimental.analysis_2d(map=field[None], spin=0, lmax=L - 1, mmax=L - 1, geometry=ducc_geometry)[0]
    power_ref = np.zeros(L)
    for m in range(L):
        for ell in range(m, L):
            idx = m * (2 * (L - 1) + 1 - m) // 2 + ell
            power_ref[ell] += (1 if m == 0 else 2) * abs(alm[idx]) ** 2
    coeffs = sp.to_spectral(torch.tensor(field), grid=grid)
    assert coeffs.dtype == torch.complex128
    ours = sp.degree_power(coeffs[..., :L, :], convention="physical").numpy()
    np.testing.assert_allclose(ours, power_ref, rtol=1e-10, atol=1e-10 * power_ref.max())
    # fme's convention does not double m > 0.
    fme_conv = sp.degree_power(coeffs, convention="fme").numpy()
    assert fme_conv[1] < ours[1]
