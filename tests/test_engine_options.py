"""other_params: skipping non-spectral gradients changes nothing per degree, only what is reported."""

import numpy as np
import pytest

from specprobe.models.registry import load_target
from specprobe.probing.accumulate import gsnr_relative_precision
from specprobe.probing.engine import run_probe


ELEMENTS_PER_DEGREE = 4 * 16 * 16 * 2  # the bundled model: 4 complex (16, 16, L) filters


@pytest.fixture(scope="module")
def results():
    target = load_target(None)
    kw = dict(variants=["per_sample", "per_sample:gamma=0.5"], n_samples=2, n_ensemble=2)
    return {mode: run_probe(target, other_params=mode, **kw) for mode in ("all", "baseline", "none")}


def test_per_degree_results_are_identical(results):
    ref = results["all"]
    for mode in ("baseline", "none"):
        r = results[mode]
        for name in ref.grad_by_l:
            np.testing.assert_allclose(r.grad_by_l[name]["total"], ref.grad_by_l[name]["total"], rtol=1e-6)
            # the per-sample gradients are the same bits in every mode (the same backward ops; only
            # which leaves receive a gradient differs), so the GSNR agrees to its accumulator's bound,
            # with the largest element at most (elements per degree) x the degree's mean
            gsnr = np.asarray(ref.gsnr_by_l[name])
            bound = gsnr_relative_precision(ELEMENTS_PER_DEGREE * np.nanmax(gsnr))
            np.testing.assert_allclose(r.gsnr_by_l[name], gsnr, rtol=max(bound, 1e-9))
            for layer, curve in ref.grad_by_l[name]["layers"].items():
                np.testing.assert_allclose(r.grad_by_l[name]["layers"][layer], curve, rtol=1e-6)


def test_other_params_are_reported_only_where_differentiated(results):
    names = list(results["all"].grad_by_l)
    assert all(results["all"].other_params[n] for n in names)
    assert results["baseline"].other_params["baseline"] == results["all"].other_params["baseline"]
    assert all(not results["baseline"].other_params[n] for n in names[1:])
    assert all(not results["none"].other_params[n] for n in names)


def test_bad_mode_is_a_value_error():
    with pytest.raises(ValueError, match="other_params"):
        run_probe(load_target(None), n_samples=1, other_params="some")
