"""GradientMoments against a two-pass float64 computation on the same float32 gradients.

Stated precision (``specprobe.probing.accumulate``):
- the running mean (float32 lerp): about float32 epsilon times sqrt(N) of the spread; measured with
  N samples of 16 x 64 gradients of scale 1e-7 (mean/std 0.01 to 1): 4e-8 at N = 8, 5.5e-7 at
  N = 1000, 1.5e-6 at N = 4000. The bounds below (1e-4 of the std) leave a margin of ~50 at N = 1000.
- E[g^2] of non-spectral parameters (float32 Welford): ~1e-6 relative at N = 1000, whatever the SNR.
- per-element GSNR of per-degree parameters (float64 Welford, float64 merge over processes):
  relative error <= 1e-12 + 1e-15 GSNR. Checked below from GSNR ~1 to GSNR ~1e8
  (var/mean^2 = 1e-8), where a float32 Welford is off by ~1e-3.
"""

import numpy as np
import pytest
import torch

from specprobe.probing.accumulate import GradientMoments, gsnr_relative_precision


def _samples(n, snr, seed=0, shape=(16, 64)):
    rng = np.random.default_rng(seed)
    scale = 1e-7 * np.exp(rng.standard_normal(shape))
    mu = snr * scale * rng.standard_normal(shape)
    return (mu + scale * rng.standard_normal((n, *shape))).astype(np.float32)


def _accumulate(g, **kwargs):
    acc = GradientMoments(torch.zeros(g.shape[1:]), degree_axis=1, **kwargs)
    for s in range(len(g)):
        acc.add(torch.from_numpy(g[s]))
    return acc


@pytest.mark.parametrize("snr", [0.01, 1.0])
def test_float32_welford_matches_float64_sums(snr):
    g = _samples(1000, snr)
    acc = _accumulate(g)
    assert acc._mean.dtype == torch.float32  # the point: 4 bytes per element for the mean
    g64 = g.astype(np.float64)
    mean, mean_sq, var = g64.mean(0), (g64**2).mean(0), g64.var(0, ddof=1)
    assert np.abs(acc.mean().numpy() - mean).max() <= 1e-4 * np.sqrt(var).max()
    np.testing.assert_allclose(acc.mean_square().numpy(), mean_sq, rtol=1e-4)
    gsnr, ok, population = acc.gsnr_rows()  # (degree, element) rows over every element
    np.testing.assert_allclose(gsnr.sum(dim=1).numpy(), (mean * mean / var).sum(axis=0), rtol=1e-4)
    np.testing.assert_array_equal(ok.sum(dim=1).numpy(), np.full(g.shape[2], g.shape[1]))
    assert population == g.shape[1]
    np.testing.assert_allclose(acc.mean_grad_by_degree(), np.sqrt((mean**2).sum(axis=0)), rtol=1e-4)


def test_complex_parameter_real_view_and_degree_axis():
    g = _samples(50, 0.5, shape=(3, 5, 7, 2))  # a complex (3, 5, 7) parameter, degree axis -1 (L = 7)
    acc = GradientMoments(torch.zeros(3, 5, 7, dtype=torch.complex64), degree_axis=-1)
    for s in range(len(g)):
        acc.add(torch.view_as_complex(torch.from_numpy(g[s])))
    assert acc.degree_axis_of_real_view() == -2
    assert acc.mean().shape == (3, 5, 7, 2)
    np.testing.assert_allclose(acc.mean_square().numpy(), (g.astype(np.float64) ** 2).mean(0), rtol=1e-5)


def test_non_spectral_parameters_keep_the_mean_only():
    g = _samples(20, 1.0)
    acc = GradientMoments(torch.zeros(g.shape[1:]), degree_axis=None)
    for s in range(len(g)):
        acc.add(torch.from_numpy(g[s]))
    assert not acc.has_second_moment and acc.gsnr_rows() is None
    with pytest.raises(ValueError, match="mean only"):
        acc.mean_square()
    assert acc.norm_of_mean() == pytest.approx(np.linalg.norm(g.astype(np.float64).mean(0)), rel=1e-5)


def test_float64_gradients_accumulate_in_float64():
    acc = GradientMoments(torch.zeros(4, dtype=torch.float64), degree_axis=0)
    acc.add(torch.tensor([1.0, 2.0, 3.0, 1e-300], dtype=torch.float64))
    assert acc._mean.dtype == torch.float64 and acc.mean()[3] == 1e-300


def test_summed_reducible_states_equal_one_accumulator():
    g = _samples(30, 0.3)
    whole = _accumulate(g)
    shards = [_accumulate(g[a:b]) for a, b in ((0, 7), (7, 20), (20, 30))]
    states = [s.reducible_state() for s in shards]
    total = {k: sum(st[k] for st in states) for k in states[0]}  # what an all-reduce(SUM) gives
    merged = GradientMoments(torch.zeros(g.shape[1:]), degree_axis=1)
    merged.load_reduced(total)
    assert merged.count == 30 and merged.nonfinite == 0
    np.testing.assert_allclose(merged.mean().numpy(), whole.mean().numpy(), rtol=1e-5, atol=1e-13)
    np.testing.assert_allclose(merged.mean_square().numpy(), whole.mean_square().numpy(), rtol=1e-5)
    np.testing.assert_allclose(merged.gsnr_rows()[0].numpy(), whole.gsnr_rows()[0].numpy(), rtol=1e-4)


def test_nonfinite_elements_are_counted():
    acc = GradientMoments(torch.zeros(5), degree_axis=0)
    acc.add(torch.tensor([1.0, float("nan"), float("inf"), 0.0, 2.0]))
    acc.add(torch.ones(5))
    assert acc.nonfinite == 2 and np.isnan(acc.mean()[1].item())


def _reference_gsnr(g):
    """Per-element GSNR by two passes in float64 over the float32 values (the reference)."""
    g64 = g.astype(np.float64)
    mean = g64.mean(0)
    return mean * mean / ((g64 - mean) ** 2).sum(0) * (len(g) - 1)


def _rows(gsnr, degree_axis=1):
    return np.moveaxis(gsnr, degree_axis, 0).reshape(gsnr.shape[degree_axis], -1)


@pytest.mark.parametrize("snr", [1.0, 1e3, 1e4])  # var/mean^2 = 1e-6 and 1e-8 (GSNR ~1e6 and ~1e8)
def test_near_deterministic_gradients_keep_gsnr_to_the_stated_precision(snr):
    g = _samples(64, snr, seed=3)
    ref = _rows(_reference_gsnr(g))
    bound = gsnr_relative_precision(ref)
    assert 0.3 * snr**2 < np.median(ref) < 3 * snr**2  # the regime the test is about
    whole = _accumulate(g)
    got = whole.gsnr_rows()[0].numpy()
    assert np.all(np.abs(got - ref) <= bound * ref), np.max(np.abs(got / ref - 1) / bound)
    # one process vs the same samples split over 2 and 3 processes (the all-reduce merge)
    for cuts in ((0, 32, 64), (0, 5, 40, 64)):
        states = [_accumulate(g[a:b]).reducible_state() for a, b in zip(cuts[:-1], cuts[1:])]
        merged = GradientMoments(torch.zeros(g.shape[1:]), degree_axis=1)
        merged.load_reduced({k: sum(st[k] for st in states) for k in states[0]})
        got = merged.gsnr_rows()[0].numpy()
        assert np.all(np.abs(got - ref) <= bound * ref), (cuts, np.max(np.abs(got / ref - 1) / bound))
    # the bound is tight enough to matter: a float32 Welford (the former storage) breaks it
    mean, m2 = np.zeros(g.shape[1:], np.float32), np.zeros(g.shape[1:], np.float32)
    for k, x in enumerate(g, start=1):
        delta = x - mean
        mean = (mean + np.float32(1.0 / k) * delta).astype(np.float32)
        m2 = (m2 + delta * (x - mean)).astype(np.float32)
    f32 = _rows(mean.astype(np.float64) ** 2 / (m2.astype(np.float64) / (len(g) - 1)))
    assert np.max(np.abs(f32 / ref - 1)) > 100 * np.max(bound)


def test_sampled_elements_keep_gsnr_to_the_stated_precision():
    from specprobe.probing.sampling import ElementSample

    g = _samples(40, 1e3, seed=4)
    sample = ElementSample(g.shape[1:], 1, per_degree=5, seed=1)
    acc = _accumulate(g, sample=sample)
    ref = _reference_gsnr(g).reshape(-1)[sample.index.reshape(-1).numpy()].reshape(sample.index.shape)
    got = acc.gsnr_rows()[0].numpy()
    assert np.all(np.abs(got - ref) <= gsnr_relative_precision(ref) * ref)


def test_non_spectral_second_moment_at_high_snr():
    """float32 Welford stays float32 for non-per-degree parameters: E[g^2] keeps ~1e-7 relative
    precision even where the variance is 1e-6 of mean^2 (the Adam step needs E[g^2], not var)."""
    g = _samples(200, 1e3, seed=5)
    acc = GradientMoments(torch.zeros(g.shape[1:]), degree_axis=None, second_moment=True)
    for x in g:
        acc.add(torch.from_numpy(x))
    assert acc._m2.dtype == torch.float32
    np.testing.assert_allclose(acc.mean_square().numpy(), (g.astype(np.float64) ** 2).mean(0), rtol=2e-6)
