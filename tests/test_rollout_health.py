"""Rollout health: the rollouts are the models stepped by hand (torch-harmonics) and fme's own inference
stepping (fme), the reference is the shallow-water solver run directly, and the blow-up flag fires at
the right lead. Everything on the CPU, tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from conftest import require
from specprobe.errors import DataError
from specprobe.models.base import RolloutSet
from specprobe.probing.rollout_health import RolloutSettings, rollout_health
from specprobe.spectral import energy_score_loss


@pytest.fixture(scope="module")
def bundled():
    from specprobe.models.registry import load_target

    return load_target(device="cpu")


# ------------------------------------------------------------------ torch-harmonics


def test_bundled_rollout_is_the_model_stepped_by_hand(bundled):
    from specprobe.models.th.format import default_sample_path

    rs = bundled.rollout_set(str(default_sample_path()), n_initial=2, steps=3, seed=0)
    assert rs.initial.shape == (2, 3, 64, 128) and rs.reference.shape == (2, 3, 3, 64, 128)
    # the reference is the file's trajectories, normalised: pair (k, t) of the held-out sample is (state t, t + 1)
    x, y, _ = bundled.load_pairs(None)
    assert torch.equal(rs.initial[1], x[4]) and torch.equal(rs.reference[1, 2], y[6])
    leads = list(bundled.rollout_leads(rs, n_ensemble=2, seed=5))
    assert len(leads) == 3
    state = rs.initial.repeat_interleave(2, dim=0)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for k, (gen, ref) in enumerate(leads):
            state = bundled.model(state, generator)  # each member fed its own previous output
            assert gen.shape == (2, 2, 3, 64, 128) and ref.shape == (2, 1, 3, 64, 128)
            torch.testing.assert_close(gen, state.view(2, 2, 3, 64, 128), rtol=1e-6, atol=1e-6)
            assert torch.equal(ref[:, 0], rs.reference[:, k])
    assert (leads[0][0][:, 0] - leads[0][0][:, 1]).abs().max() > 1e-3  # members differ: noise drawn
    assert torch.is_grad_enabled()
    other = next(iter(bundled.rollout_leads(rs, n_ensemble=2, seed=6)))[0]
    assert not torch.equal(other, leads[0][0])


def test_reference_trajectory_is_the_solver_run_directly(bundled, tmp_path):
    from specprobe.models.th import swe
    from specprobe.models.th.format import default_sample_path
    from specprobe.models.th.rollout import ROLLOUT_STREAM

    cfg = bundled.spec.training["config"]
    # The run's recipe with a 3-hour spin-up instead of 12 (a quarter of the solver time in a test).
    training = {**bundled.spec.training, "config": {**cfg, "spinup_h": 3.0}}
    short = type(bundled)(dataclasses.replace(bundled.spec, training=training), bundled.model)
    rs = short.rollout_set(n_initial=1, steps=1, seed=0, cache_dir=tmp_path)
    recipe = rs.description["recipe"]
    assert rs.description["cached"] is False and recipe["seed"] == ROLLOUT_STREAM  # run seed 0, rollout seed 0
    assert recipe["interval_h"] == 3.0 and recipe["dt"] == 200.0 and recipe["mach"] == cfg["mach"]  # the run's recipe
    assert {recipe["seed"] % 1000} & {1, 2, 500} == set()  # the run's training / held-out / lookahead streams
    direct = swe.trajectories(1, 2, seed=700, interval_h=3.0, spinup_h=3.0, nlat=64, nlon=128, grid="equiangular",
                              solver_nlat=cfg["solver_nlat"], solver_nlon=cfg["solver_nlon"], lmax=cfg["solver_lmax"],
                              dt=cfg["solver_dt"], mach=cfg["mach"])
    torch.testing.assert_close(rs.initial, bundled.normalize(direct[:, 0]), rtol=0, atol=0)
    torch.testing.assert_close(rs.reference[:, 0], bundled.normalize(direct[:, 1]), rtol=0, atol=0)
    assert rs.description["lead_hours"] == [3.0]
    again = short.rollout_set(n_initial=1, steps=1, seed=0, cache_dir=tmp_path)
    assert again.description["cached"] is True and again.state_keys == rs.state_keys
    # fingerprints are the pools' own: the held-out pool shares no state with it, and does with itself
    held = bundled._pool(*bundled.load_pairs(None)[:2], {})
    assert rs.shared_states(held) == 0
    assert bundled.rollout_set(str(default_sample_path()), n_initial=1, steps=4, seed=0).shared_states(held) == 5


def test_build_rollout_set_refuses_states_of_the_training_pool(bundled):
    from specprobe.models.th.format import default_sample_path
    from specprobe.probing.rollout_health import build_rollout_set

    held = bundled._pool(*bundled.load_pairs(None)[:2], {"source": "held-out"})
    s = RolloutSettings(steps=2, n_initial=1)
    with pytest.raises(DataError, match="rollout initial states: 3 state\\(s\\) are also in the pairs of held-out"):
        build_rollout_set(bundled, str(default_sample_path()), settings=s, avoid=[held])
    rs = build_rollout_set(bundled, str(default_sample_path()), settings=s)
    assert rs.steps == 2 and rs.n_initial == 1 and rs.description["disjoint_from"] == []


def test_th_rollout_data_errors_are_one_line(bundled, tmp_path):
    from specprobe.models.th.format import default_sample_path

    with pytest.raises(DataError, match=r"4 trajectories of 5 states; rollout health needs 1 of at least 6"):
        bundled.rollout_set(str(default_sample_path()), n_initial=1, steps=5, seed=0)
    no_recipe = dataclasses.replace(bundled.spec, training={})
    target = type(bundled)(no_recipe, bundled.model)
    with pytest.raises(DataError, match="needs the bundled shallow-water recipe or trajectory data") as e:
        target.rollout_set(n_initial=1, steps=1, seed=0, cache_dir=tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="rollout steps: expected an integer >= 1, got 0"):
        bundled.rollout_set(n_initial=1, steps=0, seed=0, cache_dir=tmp_path)


# ------------------------------------------------------------------ blow-up flag and the scores


class _Scaling(torch.nn.Module):
    """A 'model' multiplying the state by ``gain`` each step, NaN from step ``nan_at`` (1-based) on."""

    def __init__(self, gain=1.0, nan_at=None):
        super().__init__()
        self.gain, self.nan_at, self.calls = gain, nan_at, 0

    def forward(self, x, generator):
        self.calls += 1
        noise = 1e-3 * torch.randn(x.shape, generator=generator)
        out = self.gain * x + noise
        return out * math.nan if self.nan_at is not None and self.calls >= self.nan_at else out


class _Target:
    family, loss_grid, channel_names, device = "test", "legendre-gauss", ["a", "b"], torch.device("cpu")

    def __init__(self, model):
        self.model = model

    def rollout_leads(self, rs, *, n_ensemble, seed):
        from specprobe.models.th.rollout import rollout

        return rollout(self, rs, n_ensemble=n_ensemble, seed=seed)


def _steady_set(steps, n=2):
    """States that do not change: the reference at every lead is the initial state."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 8, 16, generator=g, dtype=torch.float64)
    return RolloutSet(initial=x, reference=x[:, None].expand(n, steps, 2, 8, 16).clone(), description={})


@pytest.mark.parametrize("model,first", [(_Scaling(1.0), None), (_Scaling(1.5), 3), (_Scaling(0.5), 2),
                                         (_Scaling(1.0, nan_at=4), 4)])
def test_blow_up_flag_fires_at_the_right_lead(model, first):
    # power ratio gain^(2k): 1.5 -> 2.25, 5.06, 11.4 (> 10 at lead 3); 0.5 -> 0.25, 0.0625 (< 1/10 at lead 2)
    s = RolloutSettings(steps=5, n_initial=2, n_ensemble=2)
    r = rollout_health(_Target(model), _steady_set(5), settings=s)
    assert r["first_blow_up_lead"] == first
    assert r["blow_up"] == [first is not None and k >= first for k in range(1, 6)]
    if first is not None:
        assert r["blow_up_reasons"][first - 1] and not any(r["blow_up_reasons"][:first - 1])
    if model.nan_at is None:
        assert r["series"]["power_ratio"]["total"][2] == pytest.approx(model.gain ** 6, rel=1e-3)
        json.dumps(r, allow_nan=False)  # plain JSON
    assert r["drift"]["lead"] == 5 and r["drift"]["mse"]["total"] is r["series"]["mse"]["total"][-1]


def test_scores_are_the_lookahead_scores_per_lead():
    """Energy score summed over degrees = fme's energy-score loss; mse = power of (mean - ref)."""
    from specprobe.spectral import degree_power, to_spectral

    target, rs = _Target(_Scaling(1.2)), _steady_set(3)
    r = rollout_health(target, rs, settings=RolloutSettings(steps=3, n_initial=2))
    for k, (gen, ref) in enumerate(target.rollout_leads(rs, n_ensemble=2, seed=r["noise_seed"])):
        assert r["series"]["energy_score"]["total"][k] == pytest.approx(float(energy_score_loss(gen, ref)), rel=1e-6)
        mse = degree_power(to_spectral(gen.mean(1) - ref[:, 0], grid="legendre-gauss")).sum(-1).mean()
        assert r["series"]["mse"]["total"][k] == pytest.approx(float(mse), rel=1e-6)
    assert [b["name"] for b in r["bands"]] == ["low", "mid", "high"]
    assert set(r["series"]["power_ratio"]) == {"low", "mid", "high", "total"}


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "rollout steps: expected an integer >= 1, got 0"),
    ({"steps": -3}, "rollout steps: expected an integer >= 1, got -3"),
    ({"steps": 2.0}, "rollout steps: expected an integer >= 1, got 2.0"),
    ({"n_initial": 0}, "rollout n_initial: expected an integer >= 1"),
    ({"n_ensemble": True}, "rollout n_ensemble: expected an integer >= 1"),
    ({"seed": -1}, "rollout seed: expected an integer >= 0"),
    ({"blowup_factor": 1.0}, "rollout blowup_factor: expected a finite number > 1"),
    ({"blowup_factor": math.inf}, "rollout blowup_factor: expected a finite number > 1"),
])
def test_bad_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        RolloutSettings(**kwargs)
    assert "\n" not in str(e.value)


def test_settings_must_match_the_rollout_set():
    with pytest.raises(ValueError, match="rollout set holds 3 leads, settings.steps is 4"):
        rollout_health(_Target(_Scaling()), _steady_set(3), settings=RolloutSettings(steps=4))


# ------------------------------------------------------------------ fme


@pytest.fixture(scope="module")
def fme_ckpt(tmp_path_factory):
    require("fme")  # only the fme tests skip without it
    from fme_fixtures import IN_NAMES, OUT_NAMES, build_stepper, one_thread, save_current, write_netcdf

    base = tmp_path_factory.mktemp("rollout_health_fme")
    with one_thread():
        stepper = build_stepper("NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 2, "noise_embed_dim": 4,
                                                         "filter_num_groups": 2}, seed=4)
        path = save_current(base / "ckpt.tar", stepper)
    data = write_netcdf(base / "data" / "series.nc", sorted(set(IN_NAMES) | set(OUT_NAMES)), n_time=10, seed=3)
    return path, data


@pytest.mark.oracle
def test_fme_rollout_is_fmes_inference_stepping(fme_ckpt):
    from fme.ace.data_loading.batch_data import PrognosticState
    from fme.core.random_state import RandomState
    from fme.core.tensors import add_ensemble_dim, unfold_ensemble_dim

    from fme_fixtures import one_thread
    from specprobe.models.fme.adapter import load_fme_target

    path, data = fme_ckpt
    with one_thread():
        target = load_fme_target(path)
        rs = target.rollout_set(str(data), n_initial=2, steps=3, seed=0)
        # held out: every window starts in the evaluation half of the lookahead's default time split
        train, evals = target.lookahead_pools(str(data), n_train=4, n_eval=None)
        assert rs.shared_states(train) == 0 and rs.shared_states(evals) > 0 and rs.description["synthetic"] is False
        assert min(rs.description["initial_times"]) >= evals.description["first_time"]
        torch.manual_seed(1)
        ours = list(target.rollout_leads(rs, n_ensemble=2, seed=11))
        assert all(m.training for m in target.stepper.modules)  # the adapter's train mode is restored
        torch.manual_seed(2)  # the noise comes from the seeded RandomState, not the global generator
        again = list(target.rollout_leads(rs, n_ensemble=2, seed=11))

        st = target.stepper
        batch = target._batch_data(rs.initial)
        ic = PrognosticState(batch.get_start(st.prognostic_names, st.n_ic_timesteps).as_batch_data()
                             .broadcast_ensemble(2)).with_random_state(RandomState.from_seed(11))
        st.set_eval()
        with torch.no_grad():
            pred, _ = st.predict(ic, batch, compute_derived_variables=False)  # derives and broadcasts the forcing
        st.set_train()
    assert len(ours) == 3
    for k, ((gen, ref), (gen2, _)) in enumerate(zip(ours, again)):
        assert torch.equal(gen, gen2)
        fme_gen = unfold_ensemble_dim({n: v[:, k] for n, v in pred.data.items()}, n_ensemble=2)
        fme_ref = add_ensemble_dim({n: v[:, k + 1] for n, v in batch.data.items()})
        want_gen, want_ref = target.to_loss_space(fme_gen, fme_ref)
        torch.testing.assert_close(gen, want_gen, rtol=1e-6, atol=1e-6)
        assert torch.equal(ref, want_ref) and torch.equal(ref[:, 0], rs.reference[:, k])
    assert (ours[0][0][:, 0] - ours[0][0][:, 1]).abs().max() > 1e-4  # the members' noise differs
    with one_thread():
        r = rollout_health(target, rs, settings=RolloutSettings(steps=3, n_initial=2))
    assert r["first_blow_up_lead"] is None or isinstance(r["first_blow_up_lead"], int)
    assert r["lead_hours"] == [6.0, 12.0, 18.0] and len(r["series"]["mse"]["total"]) == 3


@pytest.mark.oracle
def test_fme_rollout_set_too_short_is_one_line(fme_ckpt):
    from fme_fixtures import one_thread
    from specprobe.models.fme.adapter import load_fme_target

    path, data = fme_ckpt
    with one_thread():
        target = load_fme_target(path)
        with pytest.raises(DataError, match=r"window\(s\) of 6 steps .* rollout health needs 2"):
            target.rollout_set(str(data), n_initial=2, steps=6, seed=0)
