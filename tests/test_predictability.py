"""Predictability by degree (specprobe.spectral.predictability) on closed-form cases, the noisy data
generator's regime check, and the noisy bundled model end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from specprobe.spectral import (
    Predictability,
    noise_mask,
    predictability_sums,
    weight_share,
)
from specprobe.spectral.predictability import summary_columns

B, C, L = 48, 2, 32


def _coeffs(power_per_mode, *, batch=B, generator):
    """Complex Gaussian (batch, 1, C, L, L) coefficients, m <= l, E|c_lm|^2 = power_per_mode[l] (m = 0 real)."""
    p = torch.as_tensor(power_per_mode, dtype=torch.float64).view(1, 1, 1, -1, 1)
    l_idx = torch.arange(L).view(-1, 1)
    m_idx = torch.arange(L).view(1, -1)
    valid = (m_idx <= l_idx).to(torch.float64)
    re = torch.randn(batch, 1, C, L, L, generator=generator, dtype=torch.float64)
    im = torch.randn(batch, 1, C, L, L, generator=generator, dtype=torch.float64)
    m0 = (m_idx == 0).expand(L, L)
    im = torch.where(m0, 0.0, im)
    scale = torch.where(m0, 1.0, math.sqrt(0.5)) * valid * p.sqrt()
    return torch.complex(re * scale, im * scale)


def _pred(gen, y, x):
    sums = predictability_sums(gen, y, x)
    return Predictability.from_sums(sums, n_ensemble=gen.shape[1]), sums


def _dof(l):
    """Real degrees of freedom of one degree's power over the batch (m = 0: 1, m > 0: 2)."""
    return B * (1 + 2 * l)


def test_exact_prediction_gives_r2_one():
    g = torch.Generator().manual_seed(0)
    x = _coeffs(torch.ones(L), generator=g)
    y = x + _coeffs(torch.linspace(1.0, 0.01, L), generator=g)
    p, _ = _pred(y.expand(-1, 2, -1, -1, -1).clone(), y, x)
    assert np.allclose(p.r2, 1.0)
    assert np.allclose(p.r2_ensemble_mean, 1.0)
    assert not p.noise_dominated.any()


def test_persistence_gives_r2_zero_at_every_degree():
    g = torch.Generator().manual_seed(1)
    x = _coeffs(torch.ones(L), generator=g)
    y = x + _coeffs(torch.logspace(0, -3, L), generator=g)
    p, _ = _pred(x.expand(-1, 3, -1, -1, -1).clone(), y, x)
    assert np.allclose(p.r2, 0.0, atol=1e-12)
    # change/state is large here (>= 0.1 up to l ~ 10): those degrees are noise-dominated, l = 0 never is
    ratio = p.change_over_state
    assert (p.noise_dominated == ((ratio >= 0.1) & (np.arange(L) > 0))).all()


def test_white_noise_at_high_l_gives_signal_over_signal_plus_noise():
    """y = x + s + n: s a predictable change (all degrees), n white noise at l >= L/2 (per-mode variance
    varying with l); a perfect large-scale predictor outputs x + s. R2_l = S/(S + N) within sampling error."""
    g = torch.Generator().manual_seed(2)
    signal = torch.full((L,), 0.5, dtype=torch.float64)
    noise = torch.where(torch.arange(L) >= L // 2, torch.linspace(0.1, 3.0, L), torch.tensor(0.0)).double()
    x = _coeffs(torch.ones(L), generator=g)
    s = _coeffs(signal, generator=g)
    n = _coeffs(noise, generator=g)
    y = x + s + n
    p, _ = _pred((x + s).expand(-1, 2, -1, -1, -1).clone(), y, x)
    expected = (signal / (signal + noise)).numpy()
    for l in range(1, L):
        # R2 = 1 - N_hat / (S_hat + N_hat + cross): relative error of a power estimate ~ sqrt(2 / dof)
        tol = 4 * math.sqrt(2 / _dof(l)) * (1 - expected[l]) + 1e-12
        assert abs(p.r2[:, l] - expected[l]).max() <= tol, (l, p.r2[:, l], expected[l])
    assert np.allclose(p.r2[:, : L // 2], 1.0)
    # noise-dominated: R2 < 0.1 needs N > 9 S = 4.5, never reached here; with a threshold of 0.5, the degrees
    # where N > S (and the change is large against the state) are flagged
    mask = noise_mask(p.r2, p.change_over_state, r2_threshold=0.5)
    assert mask[:, (noise > signal).numpy()].mean() > 0.8 and not mask[:, : L // 2].any()


def test_calibrated_ensemble_fair_r2_does_not_depend_on_ensemble_size():
    """Members = x + s + independent draws of the noise (a calibrated ensemble): the fair R2 is S/(S+N) for any
    E; the E-member mean's R2 is lower by N/E; spread/skill is 1."""
    g = torch.Generator().manual_seed(3)
    signal, noise = torch.full((L,), 1.0), torch.full((L,), 1.0)
    x = _coeffs(torch.ones(L), generator=g)
    s = _coeffs(signal, generator=g)
    y = x + s + _coeffs(noise, generator=g)
    for e in (2, 6):
        members = torch.cat([x + s + _coeffs(noise, generator=g) for _ in range(e)], dim=1)
        p, _ = _pred(members, y, x)
        hi = slice(8, L)  # enough modes per degree for a tight estimate
        assert abs(p.r2[:, hi].mean() - 0.5) < 0.03
        assert abs(p.r2_ensemble_mean[:, hi].mean() - (1 - 0.5 * (1 + 1 / e))) < 0.03
        assert abs(p.spread_skill[:, hi].mean() - 1.0) < 0.03


def test_large_slow_scales_are_not_flagged_and_weight_share():
    """A degree whose change is tiny against the state is not noise-dominated even with R2 < 0 (a good model
    of a 3-hour step at l = 1); the ES weight share sums the per-degree contributions on the mask."""
    r2 = np.array([[0.9, -2.0, 0.05, 0.5, -0.3]])
    ratio = np.array([[1.0, 0.01, 0.5, 0.5, 0.2]])
    mask = noise_mask(r2, ratio)
    assert mask.tolist() == [[False, False, True, False, True]]
    w = np.array([[1.0, 2.0, 3.0, 2.0, 2.0]])
    assert weight_share(w, mask) == pytest.approx(0.5)


def test_no_reference_gives_missing_rows():
    g = torch.Generator().manual_seed(4)
    y = _coeffs(torch.ones(L), generator=g)
    p, _ = _pred(y.expand(-1, 2, -1, -1, -1).clone(), y, None)
    assert np.isnan(p.r2).all() and not p.noise_dominated.any()
    assert not p.to_dict(["a", "b"])["channels"]["a"]["has_reference"]
    assert summary_columns({"channels": p.to_dict(["a", "b"])["channels"]}) == {}


# -- the noisy data generator's regime check ------------------------------------------------------------------

TINY = dict(nlat=32, nlon=64, solver_nlat=48, solver_nlon=96, lmax=32, dt=200.0, mach=0.5, interval_h=3.0,
            spinup_h=3.0)


def _regime(forcing):
    from specprobe.models.th import swe

    return swe.regime_statistics(2, 3, seed=11, forcing=forcing, **TINY)


def test_regime_check_fails_loudly_without_forcing():
    from specprobe.models.th import swe

    with pytest.raises(swe.RegimeError, match=r"u: noise fraction 0\.00 over l 24-31"):
        swe.check_regime(_regime(None))
    weak = swe.StochasticForcing(lmin=20, lmax=32, amplitude=1e-13)
    with pytest.raises(swe.RegimeError, match="not in the noisy regime"):
        swe.check_regime(_regime(weak))


def test_regime_check_passes_with_forcing():
    from specprobe.models.th import swe

    stats = _regime(swe.StochasticForcing(lmin=20, lmax=32, amplitude=3e-9, tau_h=0.5, damping_h=24.0))
    summary = swe.check_regime(stats)
    for ch in ("u", "v"):
        assert summary["channels"][ch]["noise_fraction_top"] >= 0.7
        assert summary["channels"][ch]["noise_fraction_large"] <= 0.1


def test_unforced_advance_is_unchanged_by_the_forcing_hook():
    from specprobe.models.th import swe

    s = swe.make_solver(24, 48, 600.0, lmax=16)
    torch.manual_seed(0)
    u = swe.balanced_initial_condition(s, mach=2.0)[None]
    assert torch.equal(swe.advance(s, u, 3), swe.advance(s, u, 3, None))
    forced = swe.StochasticForcing(lmin=8, lmax=16, amplitude=1e-9).start(s, 1, torch.Generator().manual_seed(0))
    out = swe.advance(s, u, 1, forced)  # one step: the forcing is added after it, before any nonlinear spreading
    diff = out - swe.advance(s, u, 1)
    assert diff[..., 1, :8, :].abs().max() == 0 and diff[..., 1, 8:, :].abs().max() > 0  # vorticity, forced band only
    assert diff[..., 0, :, :].abs().max() == 0 and diff[..., 2, :, :].abs().max() == 0


def test_encoded_sample_round_trip(tmp_path):
    from specprobe.models.th.data import load_pairs, save_sample

    g = torch.Generator().manual_seed(5)
    states = torch.randn(1, 3, 3, 8, 16, generator=g) * torch.tensor([100.0, 5.0, 5.0]).view(1, 1, 3, 1, 1)
    states[:, :, 0] += 10000.0
    path = save_sample(tmp_path / "s.pt", states, channel_names=["h", "u", "v"], units=["m", "m/s", "m/s"],
                       grid={"nlat": 8, "nlon": 16, "type": "equiangular"}, timestep_hours=3.0, encoding="int16-lzma")
    x, _y, _ = load_pairs(path)
    ref_x = states[:, :-1].reshape(-1, 3, 8, 16)
    dev = (states - states.mean(dim=(0, 1, 3, 4), keepdim=True)).abs().amax(dim=(0, 1, 3, 4))
    ulp = states.abs().amax(dim=(0, 1, 3, 4)) * 2.0**-23  # the float32 result's own rounding
    assert ((x - ref_x).abs().amax(dim=(0, 2, 3)) <= dev / 64000 + 2 * ulp).all()
    assert ((x - ref_x).abs().amax(dim=(0, 2, 3)) > 0).any()  # it is lossy: the bound above is what it keeps


# -- the noisy bundled model ----------------------------------------------------------------------------------

def test_bundled_names_resolve():
    from specprobe.errors import CheckpointError
    from specprobe.models.registry import default_checkpoint, resolve_checkpoint
    from specprobe.models.th.format import bundled_paths

    assert resolve_checkpoint("bundled") == default_checkpoint() == resolve_checkpoint("bundled:swe")
    assert resolve_checkpoint("bundled:noisy") == bundled_paths("noisy")[0]
    with pytest.raises(CheckpointError, match="bundled:noisy"):
        resolve_checkpoint("bundled:nope")


def test_noisy_model_size_and_regime_metadata():
    from specprobe.models.safe_load import load_checkpoint_file
    from specprobe.models.th.format import bundled_paths

    ckpt, sample = bundled_paths("noisy")
    assert ckpt.stat().st_size + sample.stat().st_size <= 1_000_000
    training = load_checkpoint_file(ckpt)["training"]
    assert training["config"]["forcing"]["amplitude"] > 0
    pr = training["scores"]["validation_predictability"]
    assert max(pr["top_quarter_r2"]) < 0.1  # the regime the model was trained for (l 48-63, each channel)
    assert min(pr["low_band_r2"]) > 0.3  # large scales stay predictable
    assert training["scores"]["data_regime"]["channels"]["u"]["noise_fraction_top"] >= 0.7


def test_grad_by_l_on_bundled_noisy_prints_predictability(tmp_path):
    from typer.testing import CliRunner

    from specprobe.cli import app
    from specprobe.probing.result import ProbeResult

    r = CliRunner().invoke(app, ["grad-by-l", "bundled:noisy", "--n-samples", "8", "--threads", "1",
                                 "--whitening", "per_sample:gamma=1", "--out", str(tmp_path)])
    assert r.exit_code == 0, (r.output, r.exception)
    text = " ".join(r.output.split())
    assert "noise-dominated degrees" in text
    assert "of the energy-score weight on degrees where the model explains < 10% of the change (baseline" in text
    result = ProbeResult.from_dict(json.loads((tmp_path / "result.json").read_text()))
    p = result.predictability
    assert p["es_weight_share"]["per_sample(gamma=1,eps_frac=0.02)"] > p["es_weight_share"]["baseline"]
    for ch in ("u", "v"):  # the forced winds: most of the top quarter is flagged (R2 scatters ~0.03 per degree)
        assert len(set(range(48, 64)) & set(p["channels"][ch]["noise_dominated"])) >= 10
        assert p["bands"][ch]["high"]["r2"] < 0.1
    assert not any(l <= 8 for ch in p["channels"].values() for l in ch["noise_dominated"])  # large scales
    assert (tmp_path / "predictability_by_l.png").is_file()


def test_old_result_without_predictability_loads(tmp_path):
    from specprobe.probing.result import ProbeResult
    from specprobe.report.tables import predictability_lines, verdict

    d = {"schema": "specprobe.grad-by-l/1", "provenance": {}, "degrees": [0, 1, 2, 3], "variants": [{"name": "baseline"}],
         "grad_by_l": {"baseline": {"total": [1.0, 1.0, 0.5, 0.1], "layers": {}}}, "bands": [
             {"name": "low", "lo": 1, "hi": 1}, {"name": "high", "lo": 3, "hi": 3}],
         "stats": {"baseline": {"decline_ratio": 10.0, "spearman_rho": -1.0, "loglog_slope": -1.0}, "boost": {}}}
    r = ProbeResult.from_dict(d)
    assert r.predictability == {} and predictability_lines(r) == []
    assert verdict(r)


def test_fme_persistence_is_the_prognostic_input_and_diagnostics_have_none(tmp_path):
    """fme: the reference is the normalised prognostic state one step before the target; an output that is not
    an input (a diagnostic) has no persistence (NaN rows, reported as missing); the engine reports both."""
    from conftest import require

    require("fme")
    import fme_fixtures as ff

    from specprobe.models.fme.adapter import load_fme_target
    from specprobe.probing.engine import run_probe

    path = ff.save_current(tmp_path / "best_ckpt.tar", ff.build_stepper(
        "SphericalFourierNeuralOperatorNet", {"embed_dim": 8, "num_layers": 1}, seed=0))
    target = load_fme_target(path)
    batch = next(iter(target.batches(None, n_samples=2, batch_size=2, seed=3)))
    ref = target.persistence(batch)
    _gen, tgt = target.forward(batch, n_ensemble=2, seed=0)
    assert ref.shape == tgt.shape
    names = list(target.fme_step_loss().loss.packer.names)
    prognostic = set(target.stepper.prognostic_names)
    for i, n in enumerate(names):
        assert bool(torch.isnan(ref[:, :, i]).all()) == (n not in prognostic)
    assert any(n not in prognostic for n in names) and any(n in prognostic for n in names)
    result = run_probe(target, n_samples=2, n_ensemble=2)
    chans = result.predictability["channels"]
    assert {c for c, v in chans.items() if not v["has_reference"]} == {n for n in names if n not in prognostic}
    assert all(np.isfinite(v["r2"][1:]).all() for v in chans.values() if v["has_reference"])
