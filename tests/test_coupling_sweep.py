"""Coupling identity and sweep bookkeeping on the hand-computable gain model."""

import numpy as np
import pytest
import torch

from gain_model import GainTarget
from specprobe.probing.coupling import coupling_gradients, loss_bands, run_coupling
from specprobe.probing.engine import run_probe
from specprobe.probing.sweep import predicted_boost, summarise_sweep, sweep_configs
from specprobe.spectral import to_spectral, whitening_factor


def test_loss_bands_partition_all_degrees():
    bands = loss_bands(64, 8)
    covered = [l for lo, hi in bands for l in range(lo, hi + 1)]
    assert covered == list(range(64))
    with pytest.raises(ValueError, match="n_bands"):
        loss_bands(8, 9)


@pytest.mark.parametrize("variant", ["none", "per_sample:gamma=0.5"])
def test_band_gradients_sum_to_full_gradient(variant):
    sums, params, bands, _ = coupling_gradients(GainTarget(), variants=[variant], n_samples=3, n_ensemble=1,
                                                batch_size=2, n_bands=3)
    for name, s in sums.items():
        for k, full in enumerate(s["full"]):
            total = sum(band[k] for band in s["bands"])
            torch.testing.assert_close(total, full, rtol=1e-12, atol=1e-15)


def test_gain_model_couples_only_diagonally():
    # out_hat[l] = g_l x_hat[l]: the loss at degree l reaches only the gain at degree l.
    c = run_coupling(GainTarget(), variants=[], n_samples=2, n_ensemble=1, n_bands=4)
    np.testing.assert_allclose(c["variants"]["baseline"]["diagonal_share"], 1.0)


def test_sweep_predicted_boost_is_the_factor_band_mean():
    target = GainTarget(nlat=16, nlon=32)
    configs = sweep_configs([0.5, 1.0], [0.02])
    result = run_probe(target, variants=configs, n_samples=3, n_ensemble=1)
    sweep = summarise_sweep(result, configs)
    assert sweep["schema"] == "specprobe.sweep/1"
    assert [s["gamma"] for s in sweep["settings"]] == [0.5, 1.0]
    y_hat = to_spectral(target.y[:3])[:, None]
    for s in sweep["settings"]:
        f = whitening_factor(y_hat, gamma=s["gamma"], eps_frac=s["eps_frac"])[..., 0].mean(dim=(0, 1)).numpy()
        for b in result.bands:
            assert s["predicted_boost"][b["name"]] == pytest.approx(f[b["lo"]: b["hi"] + 1].mean(), rel=1e-10)
    assert predicted_boost(result, configs[0].name) == sweep["settings"][0]["predicted_boost"]


def test_sweep_cli_takes_the_cheaper_gradient_options(tmp_path):
    """--other-params and --moment-elements reach the probe behind a sweep (K variants: where they pay)."""
    import json

    from test_cli_bad_input import assert_one_line_error, run_cli

    r = run_cli("sweep", "--n-samples", "2", "--gamma", "0.5,1", "--other-params", "baseline", "--moment-elements", "64",
                "--device", "cpu", "--out", tmp_path / "s", "--threads", "1")
    assert r.returncode == 0, r.stderr
    sweep = json.loads((tmp_path / "s" / "sweep.json").read_text())
    options = sweep["probe"]["provenance"]["options"]
    assert options["other_params"] == "baseline" and options["moment_elements"] == 64
    assert all(s["direction_cosine_non_spectral"] is None for s in sweep["settings"])  # not differentiated
    assert all(s["adam_step_ratio"]["high"] > 0 for s in sweep["settings"])  # per-degree statistics still there
    assert sweep["probe"]["provenance"]["moment_sampling"]["sampled_parameters"]
    r = run_cli("sweep", "--moment-elements", "0", "--out", tmp_path / "bad")
    assert_one_line_error(r, "--moment-elements")
    assert not (tmp_path / "bad").exists()
