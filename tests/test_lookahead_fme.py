"""`specprobe lookahead` on a checkpoint written by fme's own trainer: one lookahead step is fme's own
``TrainStepper.train_on_batch`` update (same batch, same restored Adam state, same noise)."""

from __future__ import annotations

import pytest
import torch

from conftest import require

require("fme")

from fme_fixtures import TRAIN_LOSS  # noqa: E402
from fme_fixtures import run, threads_for_module  # noqa: E402, F401 - pytest fixtures
from specprobe.errors import DataError  # noqa: E402
from specprobe.models.fme.adapter import load_fme_target  # noqa: E402
from specprobe.models.safe_load import load_checkpoint_file  # noqa: E402
from specprobe.probing.lookahead import (  # noqa: E402
    LookaheadSettings,
    batch_schedule,
    check_disjoint,
    optimizer_factory,
    resolve_loss,
    train_arm,
)
from specprobe.spectral import WhiteningConfig  # noqa: E402

pytestmark = pytest.mark.oracle


def test_one_lookahead_step_is_fmes_train_on_batch(run):
    from fme.ace.stepper.single_module import TrainStepper, TrainStepperConfig
    from fme.core.loss import StepLossConfig
    from fme.core.optimization import OptimizationConfig

    path = run / "training_checkpoints" / "ckpt.tar"
    ours = load_fme_target(path)
    train, evals = ours.lookahead_pools(str(run.parent / "data"), n_train=4, seed=0)
    assert check_disjoint(train, evals) > 0

    recipe = ours.training_recipe()
    assert recipe["optimizer"]["type"] == "Adam" and recipe["optimizer"]["state"] is not None
    assert recipe["optimizer"]["lr"] == pytest.approx(1e-3)
    settings = LookaheadSettings(steps=1, batch_size=4)
    loss = resolve_loss(recipe["loss"], settings)
    assert (loss["crps_weight"], loss["energy_score_weight"], loss["n_ensemble"]) == (0.5, 0.5, 2)
    params = list(ours.trainable_module().parameters())
    make, prov = optimizer_factory(params, recipe["optimizer"], settings)
    assert prov["state"].startswith("checkpoint optimizer state")
    before = [p.detach().clone() for p in params]
    schedule = batch_schedule(train.size, 1, 4, 0)
    seed = 1234
    ours_loss = train_arm(ours, make, WhiteningConfig("per_sample", exponent=0.5), schedule, train, loss, noise_seed0=seed)

    # fme: a fresh stepper from the same file, its TrainStepper with the run's loss, its optimizer with the
    # saved state restored (fme's resume path), the same batch, and the same noise: in training fme draws it
    # from torch's global CPU generator (a RandomState put on the BatchData does not reach it; measured),
    # and our forward draws from a CPU generator seeded with the same seed.
    ref = load_fme_target(path)
    config = TrainStepperConfig(loss=StepLossConfig(**TRAIN_LOSS), n_ensemble=2)
    trainer = TrainStepper(stepper=ref.stepper, config=config)
    optimization = OptimizationConfig(optimizer_type="Adam", lr=1e-3).build(ref.stepper.modules, max_epochs=1)
    optimization.load_state(load_checkpoint_file(path)["optimization"])
    data = ref._batch_data(train.take(schedule[0]))
    torch.manual_seed(seed)
    with ref._ctx():
        out = trainer.train_on_batch(data, optimization)
    assert float(out.metrics["loss"]) == pytest.approx(ours_loss[0], rel=1e-6)

    theirs = list(ref.stepper.modules.parameters())
    moved = 0.0
    for p0, p, q in zip(before, params, theirs):
        moved = max(moved, float((q.detach() - p0).abs().max()))
        torch.testing.assert_close(p.detach() - p0, q.detach() - p0, rtol=1e-4, atol=1e-7)
    assert moved > 1e-4  # Adam at lr 1e-3 moved the weights: the comparison is not vacuous


def test_time_split_keeps_training_before_evaluation(run):
    target = load_fme_target(run / "training_checkpoints" / "ckpt.tar")
    data = str(run.parent / "data")
    train, evals = target.lookahead_pools(data, n_train=100, n_eval=None)
    # 19 pairs: 9 train, pair 9 left out (it shares a state with both halves), 9 evaluate
    assert (train.size, evals.size) == (9, 9)
    assert train.description["last_time"] < evals.description["first_time"]
    assert check_disjoint(train, evals) == 10  # 9 consecutive pairs: 10 distinct states
    train, evals = target.lookahead_pools(data, n_train=4, train_time_stop="2000-01-02 00:00",
                                          eval_time_start="2000-01-03 00:00")
    assert train.size == 4 and evals.description["first_time"].startswith("2000-01-03")
    with pytest.raises(DataError, match="keep every training state before every evaluation state"):
        target.lookahead_pools(data, train_time_stop="2000-01-03 00:00", eval_time_start="2000-01-02 00:00")
    with pytest.raises(DataError, match="needs both"):
        target.lookahead_pools(data, train_time_stop="2000-01-03 00:00")
    synth_train, synth_eval = target.lookahead_pools(None, n_train=3, n_eval=2)
    assert synth_train.description["synthetic"] and check_disjoint(synth_train, synth_eval) == 6


# ------------------------------------------------------------------ a finished run: the scheduler reached lr 0


@pytest.fixture(scope="module")
def finished_run(run, tmp_path_factory):
    """The trained run as at the end of a cosine schedule: ckpt.tar's optimizer state holds lr 0 (what fme
    stores when its scheduler has reached it), config.yaml still says lr 1e-3."""
    import shutil

    dst = tmp_path_factory.mktemp("finished") / "exp"
    shutil.copytree(run, dst)
    ckpt = dst / "training_checkpoints" / "ckpt.tar"
    obj = load_checkpoint_file(ckpt)
    for group in obj["optimization"]["optimizer_state_dict"]["param_groups"]:
        group["lr"] = 0.0
    torch.save(obj, ckpt)
    return dst


def _cli(*args):
    from typer.testing import CliRunner

    from specprobe.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_finished_run_trains_at_its_configured_lr_not_at_zero(finished_run, run, tmp_path):
    from specprobe.probing.lookahead import lookahead

    ckpt = finished_run / "training_checkpoints" / "ckpt.tar"
    assert load_fme_target(ckpt).training_recipe()["optimizer"]["lr"] == 0.0  # what the scheduler left
    result = lookahead(ckpt, data=str(run.parent / "data"), variants=["per_sample"], n_train=4, workers=1,
                       rollout_steps=0, settings=LookaheadSettings(steps=1, batch_size=2, repeats=1), threads=1,
                       timestamp=False, command_line=["test"])
    opt = result["optimizer"]
    assert opt["lr"] == pytest.approx(1e-3 / 3)
    assert opt["lr_source"].startswith("--lr auto: a third of the run's configured (peak) lr 0.001") \
        and "config.yaml" in opt["lr_source"]
    assert opt["state"].startswith("checkpoint optimizer state") and "warnings" not in result
    moved = [abs(c["arms"]["baseline"]["vs_checkpoint"]) for c in result["table"]["mse"].values()]
    assert max(moved) > 1e-6  # not a silent no-op: the baseline arm moved the scores


def test_a_finished_run_refuses_lr_zero_in_one_line(finished_run, run, tmp_path):
    import shutil

    ckpt = finished_run / "training_checkpoints" / "ckpt.tar"
    data = run.parent / "data"
    r = _cli("lookahead", ckpt, "--data", data, "--lr", "final", "--steps", "1", "--out", tmp_path / "a")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--lr final: the run ended at lr 0 (the end of its schedule)" in r.stderr and "give --lr NUMBER" in r.stderr
    assert not (tmp_path / "a" / "lookahead.json").exists()
    # without config.yaml beside the run, nothing records a usable lr: refused, naming --lr
    bare = tmp_path / "bare" / "exp"
    shutil.copytree(finished_run, bare)
    (bare / "config.yaml").unlink()
    r = _cli("lookahead", bare / "training_checkpoints" / "ckpt.tar", "--data", data, "--steps", "1",
             "--rollout-steps", "0", "--out", tmp_path / "b")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no usable learning rate" in r.stderr and "give --lr NUMBER" in r.stderr
    assert not (tmp_path / "b" / "lookahead.json").exists()


def test_a_default_sweep_on_short_fme_data_says_why_it_has_no_rollout(run, tmp_path):
    r = _cli("lookahead", run / "training_checkpoints" / "ckpt.tar", "--data", run.parent / "data", "--steps", "1",
             "--batch-size", "2", "--gamma", "0,1", "--repeats", "1", "--n-train", "4", "--workers", "1",
             "--threads", "1", "--out", tmp_path / "out")
    assert r.exit_code == 0, (r.stderr, r.exception)
    text = " ".join(r.stdout.split())
    assert "rollout health skipped:" in text and "give --rollout-steps N to require it" in text
    assert "recommendation: " in text and "loss 0.5 CRPS + 0.5 ES, 2 members (from" in text
    r = _cli("lookahead", run / "training_checkpoints" / "ckpt.tar", "--data", run.parent / "data", "--steps", "1",
             "--rollout-steps", "20", "--out", tmp_path / "out2")
    assert r.exit_code == 2 and "rollout health needs" in r.stderr and r.stderr.count("\n") == 1
