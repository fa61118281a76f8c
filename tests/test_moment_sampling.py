"""Second moments at sampled elements (issue 11): the estimate against the full computation.

The GSNR and the steady-state Adam step per degree are means over a degree's elements of a quantity
that needs each element's second moment. With ``moment_elements`` the probe keeps that moment at a
seeded sample of columns only and reports a standard error; here the estimate is compared with the
same probe keeping every element, and the stated error is checked to be neither broken nor inflated.
"""

import numpy as np
import pytest
import torch

from specprobe.models.registry import load_target
from specprobe.probing.accumulate import GradientMoments
from specprobe.probing.engine import run_probe
from specprobe.probing.sampling import ElementSample, StratifiedMean
from specprobe.spectral import degree_slices


@pytest.mark.parametrize("shape, axis", [((5, 7, 9), 2), ((5, 7, 9), 0), ((4, 6, 8, 2), -2), ((11,), 0)])
def test_sample_takes_the_same_columns_at_every_degree(shape, axis):
    t = torch.randn(shape)
    sample = ElementSample(shape, axis, per_degree=5, seed=3)
    rows = degree_slices(t, axis)  # (L, rest) in the order every per-degree statistic uses
    got = sample.take(t.reshape(-1))
    assert got.shape == (shape[axis], min(5, rows.shape[1]))
    # one set of columns, shared by all degrees
    cols = [int((rows[0] == v).nonzero()[0]) for v in got[0]]
    torch.testing.assert_close(got, rows[:, cols], rtol=0, atol=0)
    assert sample.complete == (rows.shape[1] <= 5)


def test_complete_strata_give_the_exact_mean_and_zero_error():
    rng = np.random.default_rng(0)
    y = [rng.random((6, 40)), rng.random((4, 10))]  # a shorter parameter covers degrees 0..3 only
    est = StratifiedMean(6)
    for rows in y:
        est.add(rows, rows.shape[1])
    exact = np.array([np.concatenate([r[l] for r in y if l < len(r)]).mean() for l in range(6)])
    np.testing.assert_allclose(est.mean(), exact, rtol=1e-12)
    assert (est.stderr() == 0).all()


def test_stderr_is_calibrated_on_known_populations():
    """200 seeded samples of 3 strata (skewed, log-normal values): the stated standard error matches the
    spread of the estimates about the population mean (|z| quantiles of a normal)."""
    rng = np.random.default_rng(1)
    pops = [rng.lognormal(0.0, 1.0, size=(8, 4000)) * s for s in (1.0, 3.0, 0.2)]
    truth = np.concatenate(pops, axis=1).mean(axis=1)
    z = []
    for seed in range(200):
        est = StratifiedMean(8)
        r = np.random.default_rng(100 + seed)
        for p in pops:
            cols = r.choice(p.shape[1], 400, replace=False)
            est.add(p[:, cols], p.shape[1])
        z.append((est.mean() - truth) / est.stderr())
    z = np.abs(np.concatenate(z))
    assert 0.55 < np.median(z) < 0.80  # normal: 0.674
    assert 0.90 < np.mean(z < 1.96) < 0.98  # normal: 0.95


def test_sampled_accumulator_reduces_like_a_whole_one():
    rng = np.random.default_rng(2)
    g = rng.standard_normal((30, 12, 50)).astype(np.float32)
    sample = ElementSample((12, 50), 1, per_degree=7, seed=0)

    def acc(part):
        m = GradientMoments(torch.zeros(12, 50), degree_axis=1, sample=sample)
        for s in part:
            m.add(torch.from_numpy(s))
        return m

    whole = acc(g)
    states = [acc(g[a:b]).reducible_state() for a, b in ((0, 11), (11, 30))]
    merged = GradientMoments(torch.zeros(12, 50), degree_axis=1, sample=sample)
    merged.load_reduced({k: states[0][k] + states[1][k] for k in states[0]})
    for a, b in zip(whole.gsnr_rows()[:2], merged.gsnr_rows()[:2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=0)
    # and the sampled rows are the full computation's rows at those elements
    g64 = torch.from_numpy(g).double()
    full = g64.mean(0) ** 2 / g64.var(0)
    torch.testing.assert_close(whole.gsnr_rows()[0], sample.take(full.reshape(-1)), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="sampled elements only"):
        whole.mean_square()


@pytest.fixture(scope="module")
def full_and_sampled():
    target = load_target(None)  # 4 filters of 16 x 16 complex per degree: 512 real elements per degree
    kw = dict(variants=["per_sample:gamma=0.5"], n_samples=8, n_ensemble=2, seed=0)
    return run_probe(target, moment_elements=None, **kw), run_probe(target, moment_elements=128, **kw)


def test_sampled_probe_matches_the_full_computation_within_its_stated_error(full_and_sampled):
    full, sampled = full_and_sampled
    meta = sampled.provenance["moment_sampling"]
    assert len(meta["sampled_parameters"]) == 4
    assert all(v == {"sampled": 128, "of": 512} for v in meta["sampled_parameters"].values())
    assert full.provenance["moment_sampling"]["sampled_parameters"] == {}
    zs = []
    for v in full.variant_names:
        # everything that needs only the mean is exact, bit for bit
        assert sampled.grad_by_l[v] == full.grad_by_l[v]
        assert sampled.direction_cosine_by_l[v] == full.direction_cosine_by_l[v]
        assert all(s == 0 for s in full.gsnr_stderr_by_l[v]) and all(s == 0 for s in full.adam_step_by_l[v]["stderr"]["total"])
        for est, exact, se in ((sampled.gsnr_by_l[v], full.gsnr_by_l[v], sampled.gsnr_stderr_by_l[v]),
                               (sampled.adam_step_by_l[v]["total"], full.adam_step_by_l[v]["total"],
                                sampled.adam_step_by_l[v]["stderr"]["total"])):
            est, exact, se = (np.asarray(x, dtype=float) for x in (est, exact, se))
            ok = np.isfinite(exact)
            assert (se[ok] > 0).all() and not np.array_equal(est[ok], exact[ok])  # really sampled
            zs.append((est[ok] - exact[ok]) / se[ok])
    z = np.abs(np.concatenate(zs))
    assert z.max() < 5  # the stated error bounds every degree (256 estimates)
    assert 0.4 < np.median(z) < 1.1  # and is not inflated (normal: 0.674)


def test_moment_elements_is_validated():
    with pytest.raises(ValueError, match="moment_elements"):
        run_probe(load_target(None), n_samples=1, moment_elements=1)


def test_cli_option_reports_the_sample_and_refuses_bad_values(tmp_path):
    import json

    from test_cli_bad_input import assert_one_line_error, run_cli

    r = run_cli("grad-by-l", "--moment-elements", "lots", "--out", tmp_path / "bad", "--quiet")
    assert_one_line_error(r, "--moment-elements", "'all'")
    assert not (tmp_path / "bad").exists()

    r = run_cli("grad-by-l", "--n-samples", "3", "--moment-elements", "64", "--device", "cpu", "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    assert "per-element variances kept at 64 of 512 elements per degree in 4 parameters" in " ".join(r.stdout.split())
    saved = json.loads((tmp_path / "s" / "result.json").read_text())
    assert saved["provenance"]["options"]["moment_elements"] == 64
    assert max(saved["gsnr_stderr_by_l"]["baseline"]) > 0
    assert max(saved["adam_step_by_l"]["baseline"]["stderr"]["total"]) > 0
