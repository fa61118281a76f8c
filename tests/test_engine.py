"""The probe engine on a hand-computable model, and its bookkeeping."""

import math

import numpy as np
import pytest
import torch

from gain_model import GainTarget, closed_form_gradient
from specprobe.probing.engine import run_probe


def test_gradient_per_degree_matches_closed_form():
    target = GainTarget()
    result = run_probe(target, variants=[], n_samples=6, n_ensemble=1, batch_size=4)
    grad = closed_form_gradient(target, 6)  # (C, L)
    expected = np.sqrt((grad**2).sum(axis=0))  # L2 over channels at each degree
    np.testing.assert_allclose(result.grad_by_l["baseline"]["layers"]["gain"], expected, rtol=1e-9)
    np.testing.assert_allclose(result.grad_by_l["baseline"]["total"], expected, rtol=1e-9)


def test_batch_size_does_not_change_the_gradient():
    a = run_probe(GainTarget(), variants=["per_sample"], n_samples=6, n_ensemble=1, batch_size=1)
    b = run_probe(GainTarget(), variants=["per_sample"], n_samples=6, n_ensemble=1, batch_size=6)
    for name in a.grad_by_l:
        np.testing.assert_allclose(a.grad_by_l[name]["total"], b.grad_by_l[name]["total"], rtol=1e-12)
        np.testing.assert_allclose(a.gsnr_by_l[name], b.gsnr_by_l[name], rtol=1e-9)


def test_gsnr_matches_per_sample_gradients():
    target = GainTarget()
    result = run_probe(target, variants=[], n_samples=5, n_ensemble=1, batch_size=2)
    per_sample = np.stack([closed_form_gradient(_one(target, s), 1) for s in range(5)])  # (N, C, L)
    mean, var = per_sample.mean(0), per_sample.var(0, ddof=1)
    expected = (mean**2 / var).mean(axis=0)  # averaged over the elements (channels) of each degree
    np.testing.assert_allclose(result.gsnr_by_l["baseline"], expected, rtol=1e-7)


def _one(target, s):
    t = GainTarget.__new__(GainTarget)
    t.__dict__.update(target.__dict__)
    t.x, t.y = target.x[s:s + 1], target.y[s:s + 1]
    return t


def test_whitened_variant_matches_closed_form_with_factor():
    from specprobe.spectral import whitening_factor

    target = GainTarget()
    result = run_probe(target, variants=["per_sample:gamma=1"], n_samples=3, n_ensemble=1)
    name = "per_sample(gamma=1,eps_frac=0.02)"
    assert [v["name"] for v in result.variants] == ["baseline", name]
    x_hat, y_hat = target.x_hat(3)
    f = whitening_factor(y_hat[:, None], gamma=1.0)[..., 0].numpy()  # (B, C, L)
    g = target.gain.detach().numpy()[None, :, :, None]
    xh, yh = x_hat.detach().numpy(), y_hat.detach().numpy()
    r = g * xh - yh
    w = np.full(xh.shape[-1], 2.0)
    w[0] = 1
    safe = np.where(np.abs(r) > 0, np.abs(r), 1.0)  # m > l slots are exactly 0 on both sides
    d = np.where(np.abs(r) > 0, np.real(np.conj(r) * xh) / safe, 0.0)
    per = (d * w).sum(-1) * f / (2 * math.sqrt(target.nlat * (target.nlon // 2 + 1)))  # fme's (L, M)
    expected = np.sqrt(((per.mean(0) / 2) ** 2).sum(0))
    np.testing.assert_allclose(result.grad_by_l[name]["total"], expected, rtol=1e-9)
    factors = result.whitening_factor_by_l[name]["c0"]
    np.testing.assert_allclose(factors["mean"], f[:, 0].mean(0), rtol=1e-12)
    assert set(result.stats["boost"][name]) == {"low", "mid", "high"}


def test_l0_bypass_is_marked_not_reported():
    result = run_probe(GainTarget(l0_bypassed=True), variants=[], n_samples=2, n_ensemble=1)
    assert math.isnan(result.grad_by_l["baseline"]["layers"]["gain"][0])
    assert math.isnan(result.grad_by_l["baseline"]["total"][0])
    assert result.to_dict()["grad_by_l"]["baseline"]["total"][0] is None


def test_nonfinite_gradients_are_reported():
    target = GainTarget()
    with torch.no_grad():
        target.x[0, 0, 0, 0] = float("nan")
    result = run_probe(target, variants=[], n_samples=2, n_ensemble=1)
    assert result.nonfinite["baseline"]["gain"] > 0
    assert any(math.isnan(v) for v in result.grad_by_l["baseline"]["total"])


def test_bad_counts_are_value_errors():
    for kwargs in (dict(n_samples=0), dict(n_ensemble=0), dict(batch_size=0)):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            run_probe(GainTarget(), **kwargs)


def test_nonfinite_weights_are_named():
    from specprobe.errors import SpecprobeError

    target = GainTarget()
    with torch.no_grad():
        target.gain[0, 3] = float("inf")
    with pytest.raises(SpecprobeError, match="NaN or Inf weights in gain"):
        run_probe(target, n_samples=1)
