"""fme's whitening invariants, config semantics and bad input, restated as our own tests, plus
hypothesis properties of the energy score, whitening and degree binning."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specprobe import spectral as sp
from specprobe.spectral.whitening import valid_mode_weights


def _red_target_hat(slope=-2.0, shape=(2, 1, 3, 16, 17), seed=0):
    g = torch.Generator().manual_seed(seed)
    *lead, L, M = shape
    c = torch.complex(torch.randn(*lead, L, M, generator=g, dtype=torch.float64),
                      torch.randn(*lead, L, M, generator=g, dtype=torch.float64))
    ell = torch.arange(L, dtype=torch.float64).clamp_min(1).unsqueeze(-1)
    mask = torch.arange(M).unsqueeze(0) <= torch.arange(L).unsqueeze(-1)
    return c * ell ** (slope / 2) * mask


def test_white_target_gives_factor_one():
    # Every valid mode has the same modulus: amp_l is constant, so the factor is exactly 1.
    L, M = 12, 13
    phase = torch.rand(1, 1, 2, L, M, dtype=torch.float64) * 2 * math.pi
    mask = torch.arange(M).unsqueeze(0) <= torch.arange(L).unsqueeze(-1)
    target_hat = torch.polar(torch.ones_like(phase), phase) * mask
    f = sp.whitening_factor(target_hat, gamma=1.0)
    torch.testing.assert_close(f, torch.ones_like(f), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_mass_is_preserved(gamma):
    y = _red_target_hat()
    f = sp.whitening_factor(y, gamma=gamma)
    w = valid_mode_weights(y.shape[-2], y.shape[-1], dtype=torch.float64)
    a = y[:, 0].abs()
    torch.testing.assert_close((w * f * a).sum((-2, -1)), (w * a).sum((-2, -1)), rtol=1e-12, atol=0)


def test_factor_non_decreasing_for_red_power_law():
    # A smooth power law (no noise): amplitude falls with l, so the factor rises with l.
    L, M = 32, 33
    ell = torch.arange(L, dtype=torch.float64).clamp_min(1)
    mask = torch.arange(M).unsqueeze(0) <= torch.arange(L).unsqueeze(-1)
    y = (ell.unsqueeze(-1) ** -1.0 * mask).to(torch.complex128).reshape(1, 1, 1, L, M)
    f = sp.whitening_factor(y, gamma=0.5)[0, 0, :, 0]
    assert torch.all(f[1:] >= f[:-1] - 1e-12)


def test_gamma_half_boost_between_one_and_gamma_one():
    y = _red_target_hat(slope=-3.0)
    f_half = sp.whitening_factor(y, gamma=0.5)
    f_one = sp.whitening_factor(y, gamma=1.0)
    high = slice(-4, None)  # smallest scales
    boost_half, boost_one = f_half[..., high, 0].mean(), f_one[..., high, 0].mean()
    assert 1.0 < boost_half < boost_one


def test_eps_floor_caps_relative_boost():
    y = _red_target_hat(slope=-8.0, shape=(1, 1, 1, 32, 33))
    for gamma, eps in [(1.0, 0.02), (0.5, 0.02), (1.0, 0.1)]:
        f = sp.whitening_factor(y, gamma=gamma, eps_frac=eps)[0, 0, :, 0]
        amp = sp.degree_rms_amplitude(y)[0, 0]
        mean_amp_degree = torch.argmin((amp - amp.mean()).abs())
        # Relative to a degree with about the mean amplitude, the boost is at most (1/eps)^gamma.
        assert (f.max() / f[mean_amp_degree]).item() <= (1 / eps) ** gamma * 1.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="bogus"), "kind"),
    (dict(kind="none", exponent=0.5), "require kind='per_sample'"),
    (dict(kind="none", eps_frac=0.1), "require kind='per_sample'"),
    (dict(kind="per_sample", exponent=0.0), r"gamma \(exponent\)"),
    (dict(kind="per_sample", exponent=1.01), r"gamma \(exponent\)"),
    (dict(kind="per_sample", eps_frac=0.0), "eps_frac"),
    (dict(kind="per_sample", eps_frac=-0.5), "eps_frac"),
])
def test_config_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sp.WhiteningConfig(**kwargs)


def test_config_forms_and_names():
    assert sp.WhiteningConfig().build() is None
    assert sp.WhiteningConfig().name == "baseline"
    c = sp.WhiteningConfig("per_sample")
    assert (c.exponent, c.eps_frac) == (0.5, 0.02)
    assert c.name == "per_sample(gamma=0.5,eps_frac=0.02)"
    assert sp.WhiteningConfig.from_fme({"kind": "per_sample", "exponent": 0.8}).name == "per_sample(gamma=0.8,eps_frac=0.02)"
    pr = sp.WhiteningConfig.from_pr1303(spectral_whitening="per_sample", whitening_eps_frac=0.05)
    assert (pr.exponent, pr.eps_frac) == (1.0, 0.05)
    assert sp.WhiteningConfig.from_pr1303().kind == "none"
    assert sp.WhiteningConfig.parse("per_sample:gamma=0.8,eps_frac=0.05").name == "per_sample(gamma=0.8,eps_frac=0.05)"
    assert sp.WhiteningConfig.parse("per_sample(gamma=0.8,eps_frac=0.05)").to_dict() == {
        "kind": "per_sample", "exponent": 0.8, "eps_frac": 0.05}
    assert sp.WhiteningConfig.parse("none").kind == "none"
    for bad in ["per_sampel", "per_sample:gamma", "per_sample:beta=1", "per_sample:gamma=x", "per_sample:gamma=2"]:
        with pytest.raises(ValueError):
            sp.WhiteningConfig.parse(bad)
    with pytest.raises(ValueError, match="energy_score_whitening"):
        sp.WhiteningConfig.from_fme({"kind": "per_sample", "gamma": 0.5})


def test_bad_input_names_the_argument():
    gen = torch.zeros(2, 3, 4, 5, 6, dtype=torch.complex64)
    tgt = torch.zeros(2, 1, 4, 5, 6, dtype=torch.complex64)
    with pytest.raises(ValueError, match="gen_hat: expected complex"):
        sp.energy_score(gen.real, tgt)
    with pytest.raises(ValueError, match="target_hat: ensemble dim"):
        sp.energy_score(gen, gen)
    with pytest.raises(ValueError, match="gen_hat: expected 5 dims"):
        sp.energy_score(gen[:, 0], tgt)
    with pytest.raises(ValueError, match="expected equal batch"):
        sp.energy_score(gen[:1], tgt)
    with pytest.raises(ValueError, match="target_hat"):
        sp.whitening_factor(tgt[:, :, 0])
    with pytest.raises(ValueError, match="gamma"):
        sp.whitening_factor(tgt, gamma=0)
    with pytest.raises(ValueError, match="eps_frac"):
        sp.whitening_factor(tgt, eps_frac=0)
    with pytest.raises(ValueError, match="gen, target: expected real"):
        sp.energy_score_loss(gen, tgt)
    with pytest.raises(ValueError, match="coeffs: expected complex"):
        sp.degree_power(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="convention"):
        sp.degree_power(tgt, convention="cgs")
    with pytest.raises(ValueError, match="degree_axis"):
        sp.bin_by_degree(torch.zeros(3, 4), 5)


def test_per_degree_contributions_sum_to_total():
    g = torch.Generator().manual_seed(0)
    gen_hat = torch.randn(2, 3, 4, 8, 9, generator=g, dtype=torch.complex128)
    tgt_hat = torch.randn(2, 1, 4, 8, 9, generator=g, dtype=torch.complex128)
    terms = sp.energy_score_loss_terms(gen_hat, tgt_hat, factor=sp.whitening_factor(tgt_hat))
    assert terms.per_degree.shape == (4, 8)
    torch.testing.assert_close(terms.per_degree.sum(), terms.total)
    torch.testing.assert_close(terms.per_sample_channel.mean(), terms.total)
    # Per-channel values are each channel's own: perturbing channel 0 changes only channel 0.
    gen2 = gen_hat.clone()
    gen2[:, :, 0] += 1.0
    t2 = sp.energy_score_loss_terms(gen2, tgt_hat)
    t1 = sp.energy_score_loss_terms(gen_hat, tgt_hat)
    assert not torch.allclose(t2.per_sample_channel[:, 0], t1.per_sample_channel[:, 0])
    torch.testing.assert_close(t2.per_sample_channel[:, 1:], t1.per_sample_channel[:, 1:])


def test_skill_spread_split():
    g = torch.Generator().manual_seed(1)
    gen_hat = torch.randn(1, 4, 1, 3, 4, generator=g, dtype=torch.complex128)
    tgt_hat = torch.randn(1, 1, 1, 3, 4, generator=g, dtype=torch.complex128)
    skill, spread = sp.energy_score_terms(gen_hat, tgt_hat)
    # Brute force over all ordered pairs i != j.
    x, y = gen_hat[0, :, 0], tgt_hat[0, 0, 0]
    brute_skill = sum((x[i] - y).abs() for i in range(4)) / 4
    brute_spread = 0.5 * sum((x[i] - x[j]).abs() for i in range(4) for j in range(4) if i != j) / 12
    torch.testing.assert_close(skill[0, 0], brute_skill)
    torch.testing.assert_close(spread[0, 0], brute_spread)
    torch.testing.assert_close(sp.energy_score(gen_hat, tgt_hat), skill - spread)


def test_power_convention_parseval():
    # Physical convention: sum_l P(l) equals the integral of f^2 over the unit sphere (Gauss quadrature).
    from torch_harmonics.quadrature import legendre_gauss_weights

    nlat, nlon = 16, 32
    f = torch.randn(nlat, nlon, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    # Band-limit f so the quadrature is exact: synthesise from coefficients.
    from torch_harmonics.sht import InverseRealSHT
    c = sp.to_spectral(f)  # fme's (L, M) layout; torch-harmonics 0.9's inverse takes its own (fewer) orders
    isht = InverseRealSHT(nlat, nlon, lmax=nlat, mmax=nlon // 2 + 1, grid="legendre-gauss").double()
    f = isht(c[..., :isht.mmax])
    _, w = legendre_gauss_weights(nlat, -1, 1)
    integral = (torch.as_tensor(w, dtype=torch.float64).unsqueeze(-1) * f**2).sum() * (2 * math.pi / nlon)
    total = sp.degree_power(sp.to_spectral(f), convention="physical").sum()
    assert total.item() == pytest.approx(integral.item(), rel=1e-10)


# ---------------------------------------------------------------- hypothesis properties
@settings(max_examples=40, deadline=None)
@given(scale=st.floats(1e-3, 1e3), gamma=st.sampled_from([0.2, 0.5, 1.0]), seed=st.integers(0, 1000))
def test_factor_invariant_to_target_scale(scale, gamma, seed):
    y = _red_target_hat(seed=seed)
    torch.testing.assert_close(sp.whitening_factor(y * scale, gamma=gamma), sp.whitening_factor(y, gamma=gamma),
                               rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(perm_seed=st.integers(0, 10_000), n_ens=st.integers(1, 5))
def test_energy_score_invariant_to_member_permutation(perm_seed, n_ens):
    g = torch.Generator().manual_seed(perm_seed)
    gen = torch.randn(2, n_ens, 2, 5, 6, generator=g, dtype=torch.complex128)
    tgt = torch.randn(2, 1, 2, 5, 6, generator=g, dtype=torch.complex128)
    perm = torch.randperm(n_ens, generator=g)
    torch.testing.assert_close(sp.energy_score(gen[:, perm], tgt), sp.energy_score(gen, tgt))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_binning_recovers_known_slice_norms(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    n_l = shape[axis]
    norms = data.draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 100.0)), min_size=n_l, max_size=n_l))
    # Each degree slice: a constant c_l, so its L2 norm is |c_l| * sqrt(count).
    per_l = torch.tensor(norms, dtype=torch.float64)
    view = [1] * len(shape)
    view[axis] = n_l
    t = per_l.reshape(view).expand(*shape).clone()
    count = t.numel() // n_l
    np.testing.assert_allclose(sp.bin_by_degree(t, axis).numpy(), np.abs(norms) * math.sqrt(count), rtol=1e-12)
    np.testing.assert_allclose(sp.bin_by_degree(t, axis, stat="rms").numpy(), np.abs(norms), rtol=1e-12)
    assert sp.bin_by_degree(t.to(torch.complex128), axis).shape == (n_l,)


def test_curve_stats_against_scipy():
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    ell = np.arange(64)
    curve = 10.0 * np.maximum(ell, 1) ** -0.8 * np.exp(0.1 * rng.normal(size=64))
    curve[5] = curve[6]  # a tie
    s = sp.curve_stats(curve, sp.default_bands(64))
    assert s["spearman_rho"] == pytest.approx(sps.spearmanr(ell[1:], curve[1:]).statistic, abs=1e-12)
    ref_slope = sps.linregress(np.log(ell[1:]), np.log(curve[1:])).slope
    assert s["loglog_slope"] == pytest.approx(ref_slope, rel=1e-10)
    assert s["decline_ratio"] == pytest.approx(curve[1:9].mean() / curve[56:64].mean())
    assert [(b.name, b.lo, b.hi) for b in sp.default_bands(64)] == [("low", 1, 8), ("mid", 9, 55), ("high", 56, 63)]
    assert [(b.name, b.lo, b.hi) for b in sp.parse_bands("low=1:4,high=40:63", 64)] == [("low", 1, 4), ("high", 40, 63)]
    with pytest.raises(ValueError, match="bands"):
        sp.parse_bands("low=1:4", 64)
    with pytest.raises(ValueError, match="exceeds"):
        sp.parse_bands("low=1:4,high=60:70", 64)
