"""GradientMoments against a full float64 computation on the same float32 gradients.

Measured here (N samples of 16 x 64 float32 gradients of scale 1e-7 spread over a factor e^+-2,
mean/std 0.01 to 1): worst relative error of float32 Welford vs float64 sums
  N =    8: mean 4e-8 (of the std), E[g^2] 2.3e-7, per-degree GSNR 3.0e-7
  N = 1000: mean 5.5e-7,            E[g^2] 2.0e-6, per-degree GSNR 1.5e-6
  N = 4000: mean 1.5e-6,            E[g^2] 4.3e-6, per-degree GSNR 2.0e-6
i.e. about float32 epsilon times sqrt(N). The bounds below (1e-4) leave a margin of ~50 at N = 1000.
"""

import numpy as np
import pytest
import torch

from specprobe.probing.accumulate import GradientMoments


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
    assert acc._mean.dtype == torch.float32  # the point: 8 bytes per element, not 16
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
