"""`specprobe lookahead`: hand-computed optimizer steps on the gain model, identical arms at 0 steps,
seeded reproducibility, and training pairs that never overlap evaluation pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gain_model import GainTarget, closed_form_gradient
from specprobe.errors import DataError
from specprobe.models.base import Batch, PairPool, state_fingerprints
from specprobe.probing.lookahead import (
    LookaheadSettings,
    batch_schedule,
    check_disjoint,
    optimizer_factory,
    resolve_loss,
    run_lookahead,
    train_arm,
)
from specprobe.spectral import loss_scaling


class GainLookahead(GainTarget):
    """The closed-form gain model with what a lookahead needs: pairs 0..n_train-1 train, the rest evaluate."""

    def __init__(self, n_train=4, n_eval=2, **kw):
        super().__init__(n_total=n_train + n_eval, **kw)
        self.n_train = n_train
        self.module = torch.nn.Module()
        self.module.gain = self.gain

    def trainable_module(self):
        return self.module

    def training_recipe(self):
        return {"loss": None, "optimizer": {"type": None, "lr": None, "hyper": {}, "state": None, "source": "test"}}

    def pool(self, lo, hi):
        x, y = self.x[lo:hi], self.y[lo:hi]
        take = lambda idx: Batch((x[list(idx)], y[list(idx)]), size=len(idx))  # noqa: E731
        return PairPool(hi - lo, take, list(zip(state_fingerprints(x), state_fingerprints(y))), {"source": "gain"})

    def pools(self):
        return self.pool(0, self.n_train), self.pool(self.n_train, self.x.shape[0])


def _es_per_degree(target, gain, lo, hi):
    """Closed form of the evaluation: E = 1, so ES = skill = |g x_hat - y_hat| per mode; (C, L) mean over pairs."""
    x_hat, y_hat = (t.detach().numpy()[lo:hi] for t in target.x_hat(hi))
    L, M = target.nlat, target.nlon // 2 + 1  # fme's (L, M); torch-harmonics 0.9 returns fewer (zero) orders
    w = np.full(x_hat.shape[-1], 2.0)
    w[0] = 1.0
    per = (np.abs(gain[None, :, :, None] * x_hat - y_hat) * w).sum(-1) / loss_scaling(L, M)
    return per.mean(0)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_one_step_on_the_gain_model_is_the_hand_computed_step(kind):
    target = GainLookahead(n_train=4, n_eval=2)
    train, evals = target.pools()
    lr = 0.05
    s = LookaheadSettings(steps=1, batch_size=4, n_ensemble=1, repeats=0, optimizer=kind, lr=lr,
                          crps_weight=0.0, energy_score_weight=1.0)
    g0 = target.gain.detach().numpy().copy()
    grad = closed_form_gradient(target, 4)  # all four training pairs form the one batch
    # SGD: g - lr * grad. Adam's first step (bias-corrected m = grad, v = grad^2): g - lr * grad / (|grad| + eps).
    expected = g0 - lr * (grad if kind == "sgd" else grad / (np.abs(grad) + 1e-8))
    assert np.abs(expected - g0).max() > 1e-3  # the step is visible

    make, prov = optimizer_factory(list(target.module.parameters()), target.training_recipe()["optimizer"], s)
    assert prov["type"] == {"sgd": "SGD", "adam": "Adam"}[kind] and prov["state"].startswith("fresh")
    loss = resolve_loss(None, s)
    train_arm(target, make, None, batch_schedule(4, 1, 4, 0), train, loss, noise_seed0=0)
    np.testing.assert_allclose(target.gain.detach().numpy(), expected, rtol=0, atol=1e-10)

    # Through run_lookahead: the scores after the step are those of the hand-stepped gain.
    target.gain.data = torch.from_numpy(g0.copy())
    result = run_lookahead(target, train, evals, variants=[], settings=s)
    np.testing.assert_array_equal(target.gain.detach().numpy(), g0)  # the checkpoint's weights are restored
    before = _es_per_degree(target, g0, 4, 6).mean(0)
    after = _es_per_degree(target, expected, 4, 6).mean(0)
    np.testing.assert_allclose(result["before"]["per_degree"]["overall"]["energy_score"], before, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result["arms"][0]["per_degree"]["overall"]["energy_score"], after, rtol=1e-7, atol=1e-10)


def test_zero_steps_gives_identical_metrics_in_every_arm():
    target = GainLookahead(n_train=4, n_eval=2)
    train, evals = target.pools()
    s = LookaheadSettings(steps=0, batch_size=2, n_ensemble=1, repeats=2, paired=False, optimizer="adam", lr=0.1,
                          crps_weight=0.0, energy_score_weight=1.0)
    result = run_lookahead(target, train, evals, variants=["per_sample", "per_sample:gamma=1"], settings=s)
    assert [a["name"] for a in result["arms"]] == ["baseline", "per_sample(gamma=0.5,eps_frac=0.02)",
                                                   "per_sample(gamma=1,eps_frac=0.02)", "baseline#repeat1",
                                                   "baseline#repeat2"]
    for a in result["arms"]:
        assert a["per_degree"] == result["before"]["per_degree"] and a["bands"] == result["before"]["bands"]
    for row in result["table"]["energy_score"].values():
        assert row["noise"] == 0.0 and all(v["vs_checkpoint"] == 0.0 for v in row["arms"].values())
    # ... while one step moves the arms apart (whitening reweights the loss), so the check above could fail
    moved = run_lookahead(target, train, evals, variants=["per_sample:gamma=1"],
                          settings=LookaheadSettings(**{**s.__dict__, "steps": 1, "repeats": 0, "optimizer": "sgd"}))
    assert moved["arms"][0]["per_degree"] != moved["arms"][1]["per_degree"]


def test_batch_schedule_is_seeded_and_covers_the_pool():
    a, b = batch_schedule(10, 7, 3, 5), batch_schedule(10, 7, 3, 5)
    assert a == b and a != batch_schedule(10, 7, 3, 6)
    first_epoch = [i for batch in a[:3] for i in batch] + a[3][:1]
    assert sorted(first_epoch) == list(range(10))
    with pytest.raises(DataError, match="holds only 2 pairs"):
        batch_schedule(2, 1, 3, 0)


def test_overlapping_pools_are_refused():
    target = GainLookahead(n_train=4, n_eval=2)
    assert check_disjoint(*target.pools()) == 8
    with pytest.raises(DataError, match="shares a state"):
        check_disjoint(target.pool(0, 4), target.pool(3, 6))


# ------------------------------------------------------------------ the bundled torch-harmonics model


def _small_train_file(tmp_path, *, include_heldout_state=False):
    """Training trajectories unlike the held-out ones (shifted in longitude and scaled), or with one held-out state."""
    from specprobe.models.th.data import save_sample
    from specprobe.models.th.format import default_sample_path
    from specprobe.models.safe_load import load_checkpoint_file

    obj = load_checkpoint_file(default_sample_path())
    states = obj["states"][:1, :3].clone()
    states = states.roll(17, dims=-1) * 1.01
    if include_heldout_state:
        states[0, 2] = obj["states"][2, 1]
    path = tmp_path / ("overlap.pt" if include_heldout_state else "train.pt")
    save_sample(path, states, channel_names=obj["channels"]["names"], units=obj["channels"]["units"],
                grid=obj["grid"], timestep_hours=3.0)
    return path


def test_bundled_model_seeded_runs_are_identical(tmp_path):
    from specprobe.probing.lookahead import lookahead

    train = _small_train_file(tmp_path)
    s = LookaheadSettings(steps=2, batch_size=2, repeats=1, paired=False, seed=3)
    kw = dict(train_data=str(train), n_eval=2, threads=1, workers=1, rollout_steps=0, timestamp=False,
              command_line=["test"], variants=["per_sample"])
    first, second = lookahead(settings=s, **kw), lookahead(settings=s, **kw)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["schema"] == "specprobe.lookahead/1"
    # --lr auto: a third of the run's configured peak lr 3e-3 (not its final 1.5e-4), with the reason
    assert first["optimizer"]["type"] == "Adam" and first["optimizer"]["lr"] == pytest.approx(0.003 / 3)
    assert first["optimizer"]["lr_source"].startswith("--lr auto: a third of the run's configured (peak) lr 0.003")
    assert first["loss"]["crps_weight"] == 0.9 and first["loss"]["energy_score_weight"] == 0.1
    base, repeat = first["arms"][0], first["arms"][2]
    assert base["train_loss"] != repeat["train_loss"]  # another batch order and noise
    other = lookahead(settings=LookaheadSettings(steps=2, batch_size=2, repeats=0, seed=4), **kw)
    assert other["arms"][0]["train_loss"] != base["train_loss"]


def test_training_pairs_never_overlap_the_heldout_pairs(tmp_path):
    from specprobe.models.registry import load_target
    from specprobe.models.th.format import default_sample_path

    target = load_target()
    train, evals = target.lookahead_pools(train_data=str(_small_train_file(tmp_path)))
    assert check_disjoint(train, evals) == 3 and evals.size == 16
    for bad in (_small_train_file(tmp_path, include_heldout_state=True), default_sample_path()):
        with pytest.raises(DataError, match="shares a state"):
            check_disjoint(*target.lookahead_pools(train_data=str(bad)))


def _cli(*args):
    from typer.testing import CliRunner

    from specprobe.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_lookahead_prints_the_sweep_and_writes_files(tmp_path):
    out = tmp_path / "out"
    r = _cli("lookahead", "--train-data", _small_train_file(tmp_path), "--n-eval", "2", "--steps", "2",
             "--batch-size", "2", "--gamma", "0,0.5", "--repeats", "1", "--rollout-steps", "0", "--workers", "1",
             "--threads", "1", "--details", "--out", out)
    assert r.exit_code == 0, (r.stderr, r.exception)
    text = " ".join(r.stdout.split())  # rich wraps long lines at the terminal width
    assert "Lookahead sweep: arm − baseline after 2 Adam steps" in text and "gamma 0.5" in text
    assert "run-to-run" in text and "recommendation: " in text and "rule: the largest gamma" in text
    assert "Trajectory: arm − baseline after 1, 2 steps" in text
    assert "Adam lr 0.001 (--lr auto: a third of the run's configured (peak) lr 0.003" in text
    assert "loss 0.9 CRPS + 0.1 ES, 2 members (from checkpoint training metadata)" in text
    assert "`specprobe sweep` is the gradient-only pre-screen" in text
    assert "whiten(gamma=0.5,eps=0.02) − baseline" in text  # --details: the full band table
    obj = json.loads((out / "lookahead.json").read_text())
    assert obj["schema"] == "specprobe.lookahead/1" and len(obj["provenance"]["checkpoint"]["sha256"]) == 64
    assert obj["provenance"]["command_line"][0] == "specprobe" and obj["provenance"]["library_versions"]["torch"]
    assert [a["name"] for a in obj["arms"]] == ["baseline", "per_sample(gamma=0.5,eps_frac=0.02)", "baseline#repeat1",
                                                "per_sample(gamma=0.5,eps_frac=0.02)#repeat1"]
    rec = obj["recommendation"]
    assert rec["rule"]["max_cost"] == 0.005 and "the largest gamma" in rec["rule"]["text"]
    assert set(rec["reasons"]) == {"per_sample(gamma=0.5,eps_frac=0.02)"} and rec["choice"] in (
        "no whitening", "per_sample(gamma=0.5,eps_frac=0.02)")
    assert "beyond noise iff |mean(d)| > t(0.975, n - 1) se" in obj["conventions"]["beyond_noise"]
    assert obj["rollout_note"] == "rollout health off (--rollout-steps 0)"
    assert (out / "lookahead.png").stat().st_size > 10_000 and (out / "lookahead_sweep.png").stat().st_size > 10_000
    # the notebook API reads it like every other result file: the CLI's figures, table and a Dataset
    import specprobe
    from specprobe.report.figures import figure_bytes

    view = specprobe.load_result(out)
    assert view.figure_names == ["lookahead", "lookahead_sweep"]
    assert figure_bytes(view.plot("lookahead")) == (out / "lookahead.png").read_bytes()
    assert figure_bytes(view.plot("lookahead_sweep")) == (out / "lookahead_sweep.png").read_bytes()
    assert view.recommendation == rec and view.sweep == obj["sweep"]
    assert view.recommend(max_cost=1e9)["rule"]["max_cost"] == 1e9
    ds = view.to_xarray()
    assert list(ds.arm.values) == [a["name"] for a in obj["arms"]]
    for i, arm in enumerate(obj["arms"]):
        assert ds.mse.values[i].tolist() == arm["per_degree"]["overall"]["mse"]
    assert ds.before_energy_score.values.tolist() == obj["before"]["per_degree"]["overall"]["energy_score"]
    row = obj["sweep"][0]
    assert ds.effect_mean.sel(sweep_arm=row["arm"], band="high", metric="mse").item() == row["bands"]["high"]["mse"]["mean"]
    assert ds.effect_se.sel(sweep_arm=row["arm"], band="low", metric="energy_score").item() == \
        row["bands"]["low"]["energy_score"]["se"]
    assert ds.gamma.values.tolist() == [0.5] and ds.attrs["recommendation"] == rec["choice"]
    traj = row["bands"]["low"]["mse"]["trajectory"]
    assert ds.trajectory_mean.sel(sweep_arm=row["arm"], band="low", metric="mse").values.tolist() == \
        [x["mean"] for x in traj]
    # `specprobe compare` recomputes the recommendation from the file, under its own --max-cost
    r = _cli("compare", out / "lookahead.json", "--max-cost", "0", "--json")
    assert r.exit_code == 0, r.stderr
    (cmp,) = json.loads(r.stdout)
    assert cmp["recommendation"]["rule"]["max_cost"] == 0 and cmp["stored_choice"] == rec["choice"]
    low = row["bands"]["low"]
    if max(low["energy_score"]["mean"], low["mse"]["mean"]) > 0:  # any low-band cost exceeds a zero limit
        assert cmp["recommendation"]["choice"] == "no whitening"
    r = _cli("compare", out / "lookahead.json", "--labels", "two steps")
    assert r.exit_code == 0 and "Compared lookahead sweeps" in r.stdout and "two steps: recommendation: " in r.stdout


@pytest.mark.parametrize("args,match", [
    (["--optimizer", "rmsprop"], "optimizer: expected one of adam, adamw, sgd"),
    (["--steps", "-1"], "steps: expected an integer >= 0"),
    (["--train-time-stop", "2000-01-01"], "split fme netCDF data by time"),
    (["--train-data", "HELDOUT", "--steps", "0"], "shares a state with the training pairs"),
    (["--lr", "0"], "--lr: expected a positive number (a lookahead at lr 0 changes nothing)"),
    (["--lr", "fast"], "--lr: expected a positive number or one of auto, peak, final"),
    (["--gamma", "0,1.5"], "--gamma: expected numbers in [0, 1] (0 = the baseline arm)"),
    (["--eps-frac", "0"], "eps_frac: expected a number > 0"),
    (["--max-cost", "a lot"], "--max-cost: expected a percentage >= 0 or 'spread'"),
    (["--workers", "0"], "workers: expected an integer >= 1"),
    (["--rollout-steps", "-1"], "rollout steps: expected an integer >= 0"),
    (["--eval-steps", "50"], "eval_steps: expected step counts in 1..40"),
])
def test_cli_lookahead_bad_input_is_one_line(tmp_path, args, match):
    from specprobe.models.th.format import default_sample_path

    args = [default_sample_path() if a == "HELDOUT" else a for a in args]
    r = _cli("lookahead", *args, "--out", tmp_path / "out", "--threads", "1")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and match in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_checkpoint_optimizer_state_is_restored_fresh_for_every_arm():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    run = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.9))
    for _ in range(3):  # a run's history: moments and a step count
        run.zero_grad()
        (p ** 2).sum().backward()
        run.step()
    saved = run.state_dict()
    recipe = {"type": "Adam", "lr": 0.01, "hyper": {"betas": [0.8, 0.9]}, "state": saved, "source": "test"}
    make, prov = optimizer_factory([p], recipe, LookaheadSettings())
    assert prov["state"].startswith("checkpoint optimizer state") and prov["hyper_parameters"]["betas"] == (0.8, 0.9)
    first = make()
    exp_avg = first.state[p]["exp_avg"].clone()
    assert float(first.state[p]["step"]) == 3 and torch.equal(exp_avg, saved["state"][0]["exp_avg"])
    first.zero_grad()
    (p ** 2).sum().backward()
    first.step()  # one arm's step must not leak into the next arm's starting state
    assert torch.equal(make().state[p]["exp_avg"], exp_avg) and torch.equal(saved["state"][0]["exp_avg"], exp_avg)
    assert optimizer_factory([p], recipe, LookaheadSettings(optimizer="adamw"))[1]["state"].startswith("checkpoint")
    _, sgd = optimizer_factory([p], recipe, LookaheadSettings(optimizer="sgd", lr=0.1))
    assert sgd["type"] == "SGD" and sgd["state"] == "fresh: the checkpoint's state is Adam's, not usable by SGD"


def test_fresh_shallow_water_training_pairs_are_cached_and_unseen(tmp_path):
    from specprobe.models.registry import load_target

    target = load_target()
    train, evals = target.lookahead_pools(n_train=5, cache_dir=tmp_path)
    desc = train.description
    assert train.size == 5 and desc["cached"] is False and desc["recipe"]["seed"] == 500  # the run used 1 and 2
    assert desc["recipe"]["interval_h"] == 3.0 and desc["recipe"]["spinup_h"] == 12.0  # the run's data recipe
    assert check_disjoint(train, evals) == 6
    again, _ = target.lookahead_pools(n_train=5, cache_dir=tmp_path)
    assert again.description["cached"] is True and again.state_keys == train.state_keys


def test_the_runs_gradient_clipping_is_applied():
    target = GainLookahead(n_train=4, n_eval=2)
    train, _ = target.pools()
    g0 = target.gain.detach().numpy().copy()
    grad = closed_form_gradient(target, 4)
    clip = 0.1 * float(np.linalg.norm(grad))  # well below the gradient norm: clipping bites
    recipe = {"type": "SGD", "lr": 0.05, "hyper": {}, "state": None, "max_grad_norm": clip, "source": "test"}
    s = LookaheadSettings(steps=1, batch_size=4, n_ensemble=1, crps_weight=0.0, energy_score_weight=1.0)
    make, prov = optimizer_factory(list(target.module.parameters()), recipe, s)
    assert prov["max_grad_norm"] == clip and prov["type"] == "SGD"
    train_arm(target, make, None, batch_schedule(4, 1, 4, 0), train, resolve_loss(None, s), noise_seed0=0)
    expected = g0 - 0.05 * grad * clip / (np.linalg.norm(grad) + 1e-6)  # torch's clip_grad_norm_ coefficient
    np.testing.assert_allclose(target.gain.detach().numpy(), expected, rtol=0, atol=1e-10)


def test_paired_repeats_measure_the_spread_of_the_arm_difference():
    target = GainLookahead(n_train=4, n_eval=2)
    train, evals = target.pools()
    common = dict(steps=2, batch_size=2, n_ensemble=1, repeats=2, optimizer="sgd", lr=0.05, crps_weight=0.0,
                  energy_score_weight=1.0)
    paired = run_lookahead(target, train, evals, variants=["per_sample:gamma=1"], settings=LookaheadSettings(paired=True, **common))
    plain = run_lookahead(target, train, evals, variants=["per_sample:gamma=1"],
                          settings=LookaheadSettings(paired=False, **common))
    arm = "per_sample(gamma=1,eps_frac=0.02)"
    assert [a["name"] for a in paired["arms"]] == ["baseline", arm, "baseline#repeat1", f"{arm}#repeat1",
                                                   "baseline#repeat2", f"{arm}#repeat2"]
    by_name = {a["name"]: a["bands"]["energy_score"]["high"]["overall"] for a in paired["arms"]}
    row, ref = paired["table"]["energy_score"]["high"], paired["before"]["bands"]["energy_score"]["high"]["overall"]
    diffs = [(by_name[arm + sfx] - by_name["baseline" + sfx]) / abs(ref) for sfx in ("", "#repeat1", "#repeat2")]
    assert row["arms"][arm]["paired_sd"] == pytest.approx(np.std(diffs, ddof=1), rel=1e-12)
    assert row["arms"][arm]["paired_sd"] > 0  # other orders, other batches: the difference moves
    # the noise column stays the baseline reruns' own spread, with or without paired repeats
    assert row["noise"] == plain["table"]["energy_score"]["high"]["noise"] > 0
    assert "paired_sd" not in plain["table"]["energy_score"]["high"]["arms"][arm]
    j = row["arms"][arm]["paired"]
    assert j["n"] == 3 and j["mean"] == pytest.approx(np.mean(diffs), rel=1e-12)
    assert j["se"] == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(3), rel=1e-12)
    assert row["arms"][arm]["beyond_noise"] == (j["judgement"] == "beyond noise")
    # without paired orders the difference is unjudged, never "within noise"
    cell = plain["table"]["energy_score"]["high"]["arms"][arm]
    assert cell["beyond_noise"] is None and cell["judgement"] == "unjudged"


def test_trajectory_scores_equal_shorter_runs():
    """The score after k of N steps is the score of an N = k run: same batches (the schedule's prefix), same seeds."""
    target = GainLookahead(n_train=4, n_eval=2)
    train, evals = target.pools()
    common = dict(batch_size=2, n_ensemble=1, repeats=1, optimizer="sgd", lr=0.05, crps_weight=0.0,
                  energy_score_weight=1.0)
    long = run_lookahead(target, train, evals, variants=["per_sample:gamma=1"], settings=LookaheadSettings(steps=4, **common))
    assert long["settings"]["trajectory_steps"] == [1, 2]  # N/4 and N/2
    short = run_lookahead(target, train, evals, variants=["per_sample:gamma=1"], settings=LookaheadSettings(steps=2, **common))
    for a, b in zip(long["arms"], short["arms"]):
        assert a["intermediate"]["2"] == b["bands"]
    assert long["arms"][0]["intermediate"]["1"] != long["arms"][0]["bands"]  # the steps moved the scores
    (row,) = long["sweep"]
    traj = row["bands"]["high"]["energy_score"]["trajectory"]
    assert [x["steps"] for x in traj] == [1, 2, 4]
    assert traj[1]["mean"] == pytest.approx(short["sweep"][0]["bands"]["high"]["energy_score"]["mean"], rel=1e-12)
    assert traj[2]["mean"] == row["bands"]["high"]["energy_score"]["mean"]
    explicit = LookaheadSettings(steps=4, eval_steps=(3, 1, 4), **common)
    assert explicit.eval_steps == (1, 3, 4) and explicit.trajectory_steps() == (1, 3)


def test_a_learning_rate_too_small_to_move_the_scores_is_said():
    target = GainLookahead(n_train=4, n_eval=2)
    train, evals = target.pools()
    s = LookaheadSettings(steps=2, batch_size=2, n_ensemble=1, repeats=1, optimizer="sgd", lr=1e-30, crps_weight=0.0,
                          energy_score_weight=1.0)
    result = run_lookahead(target, train, evals, variants=["per_sample"], settings=s)
    assert result["warnings"] == ["the baseline arm left every band score within 1e-7 of the checkpoint's: lr 1e-30 "
                                  "is too small to move the scores, so no difference can show; raise --lr"]
    assert "warnings" not in run_lookahead(target, train, evals, variants=["per_sample"],
                                           settings=LookaheadSettings(**{**s.__dict__, "lr": 0.05}))


def test_learning_rate_policies_on_the_bundled_model():
    from specprobe.errors import SpecprobeError
    from specprobe.models.registry import load_target
    from specprobe.probing.lookahead import resolve_lr

    target = load_target(device="cpu")
    rec = target.training_recipe()["optimizer"]
    assert rec["lr"] == pytest.approx(0.003 * 0.05)  # what the adapter records: the final lr
    lr, why = resolve_lr(target, rec, LookaheadSettings())
    assert lr == pytest.approx(0.001) and why.startswith("--lr auto: a third of the run's configured (peak) lr 0.003")
    assert resolve_lr(target, rec, LookaheadSettings(lr_from="peak"))[0] == pytest.approx(0.003)
    assert resolve_lr(target, rec, LookaheadSettings(lr_from="final"))[0] == pytest.approx(0.00015)
    assert resolve_lr(target, rec, LookaheadSettings(lr=0.02, lr_from="final")) == (0.02, "--lr")
    # a recipe whose final lr is 0 (a finished schedule): --lr final is refused naming --lr ...
    with pytest.raises(SpecprobeError, match=r"--lr final: the run ended at lr 0 .* give --lr NUMBER or --lr auto"):
        resolve_lr(target, {**rec, "lr": 0.0}, LookaheadSettings(lr_from="final"))
    # ... and a bare optimizer_factory never builds an lr-0 optimizer
    with pytest.raises(SpecprobeError, match="lr 0 changes nothing; give --lr"):
        optimizer_factory([torch.nn.Parameter(torch.zeros(2))], {**rec, "lr": 0.0}, LookaheadSettings())


def test_sweep_shorthand_arms():
    from specprobe.probing.lookahead import DEFAULT_GAMMAS, sweep_variants

    names = [c.name for c in sweep_variants(DEFAULT_GAMMAS)]
    assert names == [f"per_sample(gamma={g},eps_frac=0.02)" for g in ("0.2", "0.5", "0.8", "1")]  # 0: the baseline
    grid = [c.name for c in sweep_variants([0, 0.5, 1], [0.02, 0.05], ["per_sample:gamma=0.5,eps_frac=0.05"])]
    assert grid == ["per_sample(gamma=0.5,eps_frac=0.02)", "per_sample(gamma=0.5,eps_frac=0.05)",
                    "per_sample(gamma=1,eps_frac=0.02)", "per_sample(gamma=1,eps_frac=0.05)"]  # each once
    assert [c.name for c in sweep_variants(None, [0.1])] == ["per_sample(gamma=0.5,eps_frac=0.1)"]
    assert [c.name for c in sweep_variants(None, None, ["per_sample:gamma=0.8"])] == ["per_sample(gamma=0.8,eps_frac=0.02)"]
    assert sweep_variants([0]) == []
    with pytest.raises(ValueError, match=r"--gamma: expected numbers in \[0, 1\]"):
        sweep_variants([0.5, 2])


def test_arms_are_identical_whichever_process_trains_them(tmp_path):
    """Two worker processes (each rebuilding the model and pools) give the one-process result, rollouts included."""
    from specprobe.probing.lookahead import lookahead

    train = _small_train_file(tmp_path)
    s = LookaheadSettings(steps=2, batch_size=2, repeats=1, eval_steps=(1, 2))
    kw = dict(train_data=str(train), n_eval=2, threads=1, rollout_steps=2, timestamp=False, command_line=["test"],
              variants=["per_sample:gamma=1"], settings=s, cache_dir=tmp_path / "cache")
    one, two = lookahead(workers=1, **kw), lookahead(workers=2, **kw)
    assert one["arms"][0]["rollout"]["leads"] == [1, 2] and "checkpoint" in one["rollout"]
    assert len(one["arms"]) == 4 and one["arms"][1]["train_loss"] != one["arms"][0]["train_loss"]
    for r in (one, two):  # whether the rollout reference came from the cache is provenance, not a result
        assert isinstance(r["rollout"]["rollout_set"].pop("cached"), bool)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_a_loss_recipe_from_defaults_is_said_to_be_one():
    from specprobe.report.lookahead_report import provenance_lines

    target = GainLookahead(n_train=4, n_eval=2)  # its training_recipe records no loss
    s = LookaheadSettings(steps=1, batch_size=2, n_ensemble=1, repeats=1, optimizer="sgd", lr=0.05)
    lines = provenance_lines(run_lookahead(target, *target.pools(), variants=["per_sample"], settings=s))
    assert lines[1].startswith("loss 0 CRPS + 1 ES, 1 members -- DEFAULTS: no training loss config was found")
    given = run_lookahead(target, *target.pools(), variants=["per_sample"],
                          settings=LookaheadSettings(**{**s.__dict__, "crps_weight": 0.0, "energy_score_weight": 1.0}))
    assert provenance_lines(given)[1] == "loss 0 CRPS + 1 ES, 1 members (from options)"


def test_the_benchmark_script_compares_parallel_and_serial_runs(tmp_path, capsys):
    """benchmarks/bench_lookahead.py at toy size: two CLI processes, the ratio, identical results."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_lookahead import main

    train = _small_train_file(tmp_path)
    main(["--workers", "2", "--args", f"--train-data {train} --n-eval 2 --steps 1 --batch-size 2 --repeats 1 "
                                      "--gamma 0,1 --rollout-steps 0"])
    out = capsys.readouterr().out
    assert "workers 2 x 1 thread: wall" in out and "workers 1 x 1 thread: wall" in out
    assert "serial / parallel wall: " in out and "results identical: True" in out


def test_cli_lookahead_writes_netcdf_and_a_wandb_run(tmp_path, monkeypatch):
    """The lookahead goes through its result view like every command: --netcdf and --wandb (offline)."""
    import xarray as xr
    from wandb_offline import offline_runs

    import specprobe

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "out"
    r = _cli("lookahead", "--train-data", _small_train_file(tmp_path), "--n-eval", "2", "--steps", "2",
             "--batch-size", "2", "--gamma", "0,0.5", "--repeats", "1", "--rollout-steps", "0", "--workers", "1",
             "--threads", "1", "--netcdf", "--wandb=specprobe-test", "--out", out)
    assert r.exit_code == 0, (r.stderr, r.exception)
    view = specprobe.load_result(out / "lookahead.json")
    with xr.open_dataset(out / "lookahead.nc") as ds:
        assert ds.load().identical(view.to_xarray())
    (run,) = offline_runs(out)
    assert run.project == "specprobe-test"
    assert run.summary["recommendation"] == view.recommendation["summary"]
    logged = {k for row in run.history for k in row}
    assert {"figures/lookahead", "figures/lookahead_sweep", "table"} <= logged
