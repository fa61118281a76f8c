"""``--n-forward-steps K``: the probed loss is fme's own K-step training rollout loss.

Oracle: fme's ``TrainStepper.train_on_batch`` with a ``TrainStepperConfig`` of the same
``n_forward_steps``, ``optimize_last_step_only``, ``pushforward_steps`` and
``sqrt_loss_step_decay_constant``, on the same batch and the same seeded noise.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import require

require("fme")

from fme_fixtures import (  # noqa: E402
    IN_NAMES,
    OUT_NAMES,
    build_stepper,
    save_current,
    threads_for_module,  # noqa: F401 - module-scoped autouse fixture: one torch thread
    write_netcdf,
)
from specprobe.errors import DataError, SpecprobeError  # noqa: E402
from specprobe.models.fme.adapter import load_fme_target  # noqa: E402
from specprobe.models.fme.data import synthetic_series  # noqa: E402
from specprobe.probing.engine import LossSettings, run_probe  # noqa: E402
from specprobe.spectral import WhiteningConfig, bin_by_degree, ensemble_loss  # noqa: E402

pytestmark = pytest.mark.oracle
ALL_NAMES = sorted(set(IN_NAMES) | set(OUT_NAMES))
MODEL = ("NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 2, "noise_embed_dim": 4, "filter_num_groups": 2,
                                  "spectral_ratio": 0.5, "filter_preserves_global_mean": True})
WHITENED = WhiteningConfig("per_sample", exponent=0.5)
TRAINING = {"n_forward_steps": 3, "optimize_last_step_only": False,
            "loss": {"type": "EnsembleLoss", "kwargs": {"crps_weight": 0.1, "energy_score_weight": 1.0},
                     "sqrt_loss_step_decay_constant": 0.5}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A current-format ckpt.tar laid out as fme's trainer writes it, with the run's config.yaml."""
    exp = tmp_path_factory.mktemp("rollout_run")
    (exp / "training_checkpoints").mkdir()
    path = save_current(exp / "training_checkpoints" / "ckpt.tar", build_stepper(*MODEL, seed=4))
    (exp / "config.yaml").write_text(yaml.safe_dump({"stepper_training": TRAINING}))
    return path


def _batch(target, n=2, seed=0):
    return next(iter(target.batches(None, n_samples=n, batch_size=n, seed=seed)))


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _fme_rollout(target, batch, *, seed, params, loss_kwargs, alpha):
    """fme's TrainStepper.train_on_batch over the target's rollout settings: (loss, grads)."""
    from fme.ace.stepper.single_module import TrainStepper, TrainStepperConfig
    from fme.core.loss import StepLossConfig
    from fme.core.optimization import NullOptimization

    class Capture(NullOptimization):  # fme's training loop; the optimizer step replaced by autograd.grad
        loss = 0.0

        def set_mode(self, modules):
            for m in modules:
                m.train()

        def accumulate_loss(self, loss):
            self.loss = self.loss + loss

        def step_weights(self):
            self.grads = torch.autograd.grad(self.loss, params)

    r = target.rollout
    config = TrainStepperConfig(
        loss=StepLossConfig(type="EnsembleLoss", kwargs=loss_kwargs, weights=dict(target.loss_weights),
                            sqrt_loss_step_decay_constant=alpha),
        n_ensemble=2, n_forward_steps=r.n_forward_steps, optimize_last_step_only=r.optimize_last_step_only,
        pushforward_steps=r.pushforward_steps)
    torch.manual_seed(seed)  # fme's training noise: the global RNG (its ForcingDeriver drops stepper_state)
    opt = Capture()
    TrainStepper(stepper=target.stepper, config=config).train_on_batch(target._batch_data(batch), opt)
    return opt.loss, opt.grads


ROLLOUTS = {
    "all_steps_decay": (dict(n_forward_steps=3, optimize_last_step_only=False), 0.5, WHITENED),
    "last_step_only": (dict(n_forward_steps=3, optimize_last_step_only=True), 0.0, None),
    "pushforward": (dict(n_forward_steps=3, optimize_last_step_only=False, pushforward_steps=1), 0.25, WHITENED),
}


@pytest.mark.parametrize("case", list(ROLLOUTS))
def test_rollout_loss_and_degree_gradients_are_fmes(case, ckpt):
    options, alpha, whitening = ROLLOUTS[case]
    target = load_fme_target(ckpt, **options)
    assert target.rollout.sqrt_loss_step_decay_constant == 0.5  # from config.yaml's loss ...
    target.rollout = dataclasses.replace(target.rollout, sqrt_loss_step_decay_constant=alpha)
    batch = _batch(target)
    assert batch.payload["data"]["h"].shape[1] == 4  # K + 1 times
    spectral = [p for p in target.parameters() if p.per_degree]
    tensors = [p.tensor for p in spectral]
    kwargs = {"crps_weight": 0.1, "energy_score_weight": 1.0}
    steps = target.loss_steps(batch, n_ensemble=2, seed=17)
    assert [w for *_, w in steps] == pytest.approx([(1 + alpha * k) ** -0.5 for k in target.rollout.loss_steps])
    ours = sum(w * ensemble_loss(g, t, whitening=whitening, **kwargs) for g, t, w in steps)
    g_ours = torch.autograd.grad(ours, tensors)
    if whitening is not None:
        kwargs["energy_score_whitening"] = whitening.to_dict()
    loss, g_fme = _fme_rollout(target, batch, seed=17, params=tensors, loss_kwargs=kwargs, alpha=alpha)
    assert abs(float(ours) - float(loss)) <= 1e-6 * abs(float(loss))
    for p, a, b in zip(spectral, g_ours, g_fme):
        assert bin_by_degree(b, p.degree_axis).max() > 0
        assert _rel(bin_by_degree(a, p.degree_axis), bin_by_degree(b, p.degree_axis)) <= 1e-5, p.name
    # the rollout really is more than one step: the one-step loss differs
    one = load_fme_target(ckpt, n_forward_steps=1)
    g1, t1, _ = one.loss_steps(_batch(one), n_ensemble=2, seed=17)[0]
    assert abs(float(ensemble_loss(g1, t1, whitening=whitening, crps_weight=0.1, energy_score_weight=1.0)) - float(loss)) > 1e-3


def test_probe_curves_are_fmes_rollout_gradient(ckpt):
    """The engine's per-degree curves and loss for K = 3 are those of fme's rollout loss backward."""
    target = load_fme_target(ckpt, n_forward_steps=3)  # decay 0.5 from config.yaml
    result = run_probe(target, variants=[WHITENED], n_samples=2, batch_size=2, n_ensemble=2, seed=0,
                       loss=LossSettings(crps_weight=0.1))
    spectral = [p for p in target.parameters() if p.per_degree]
    for variant, whitening in (("baseline", None), (WHITENED.name, WHITENED)):
        kwargs = {"crps_weight": 0.1, "energy_score_weight": 1.0}
        if whitening is not None:
            kwargs["energy_score_whitening"] = whitening.to_dict()
        loss, grads = _fme_rollout(target, _batch(target), seed=0, params=[p.tensor for p in spectral],
                                   loss_kwargs=kwargs, alpha=0.5)
        assert result.stats[variant]["loss"] == pytest.approx(float(loss), rel=1e-6)
        for p, g in zip(spectral, grads):
            want = bin_by_degree(g.double(), p.degree_axis).numpy()
            got = np.asarray(result.grad_by_l[variant]["layers"][p.name])
            assert math.isnan(got[0]) == p.l0_bypassed
            np.testing.assert_allclose(got[1:], want[1:], rtol=1e-5, atol=1e-12 * want.max())


class _ForwardOnly:
    """The target as the engine saw every target before rollouts: one ``forward``, no ``loss_steps``."""

    def __init__(self, target):
        self._t = target

    def __getattr__(self, name):
        if name == "loss_steps":
            raise AttributeError(name)
        return getattr(self._t, name)


def test_one_step_reproduces_the_one_step_probe_exactly(ckpt):
    target = load_fme_target(ckpt, n_forward_steps=1)
    assert target.rollout.describe()["step_weights"] == [1.0]
    batch = _batch(target)
    (gen, tgt, w), = target.loss_steps(batch, n_ensemble=2, seed=3)
    gen0, tgt0 = target.forward(batch, n_ensemble=2, seed=3)
    assert w == 1.0 and torch.equal(gen, gen0) and torch.equal(tgt, tgt0)
    kwargs = dict(variants=[WHITENED], n_samples=2, batch_size=1, n_ensemble=2, seed=1, loss=LossSettings(crps_weight=0.1))
    new, old = run_probe(target, **kwargs).to_dict(), run_probe(_ForwardOnly(target), **kwargs).to_dict()
    for r in (new, old):
        r["provenance"].pop("elapsed_s")
    assert new == old
    # synthetic data: a K-step window starts with exactly the one-step pair
    spec = target.data_spec()
    pair, window = synthetic_series(spec, 2, 5, 2), synthetic_series(spec, 2, 5, 4)
    for name in spec.names:
        assert window[name].shape[1] == 4 and torch.equal(window[name][:, :2], pair[name])


def test_default_is_the_runs_training_config(ckpt, tmp_path):
    from rich.console import Console

    import specprobe
    from specprobe.models.registry import describe_checkpoint
    from specprobe.report.info import render_info

    desc = describe_checkpoint(ckpt)
    rollout = desc["training_rollout"]
    assert rollout["n_forward_steps"] == 3 and rollout["optimize_last_step_only"] is False
    assert rollout["sqrt_loss_step_decay_constant"] == 0.5 and rollout["source"].endswith("config.yaml")
    console = Console(record=True, width=200)
    render_info(desc, console)
    assert "n_forward_steps=3" in console.export_text()
    result = specprobe.probe(ckpt, n_samples=1, n_ensemble=2, timestamp=False, crps_weight=0.1)
    prov = result.provenance["rollout"]
    assert prov["n_forward_steps"] == 3 and prov["loss_steps"] == [0, 1, 2]
    assert prov["step_weights"] == pytest.approx([1.0, 1.5 ** -0.5, 2.0 ** -0.5])
    # a sampled length (stochastic fine-tunes): the longest is the default; optimize_last_step_only kept
    sampled = {"n_forward_steps": {"outcomes": [{"steps": 1, "probability": 0.5}, {"steps": 4, "probability": 0.5}]},
               "optimize_last_step_only": True}
    (ckpt.parent.parent / "config.yaml").write_text(yaml.safe_dump({"stepper_training": sampled}))
    try:
        target = load_fme_target(ckpt)
        assert (target.rollout.n_forward_steps, target.rollout.loss_steps) == (4, [3])
        assert "sampled" in describe_checkpoint(ckpt)["training_rollout"]["recorded"]
    finally:
        (ckpt.parent.parent / "config.yaml").write_text(yaml.safe_dump({"stepper_training": TRAINING}))
    # nothing recorded: one step
    bare = save_current(tmp_path / "best_ckpt.tar", build_stepper(*MODEL, seed=4))
    assert load_fme_target(bare).rollout.n_forward_steps == 1


def test_netcdf_rollout_windows(ckpt, tmp_path):
    import xarray as xr

    path = write_netcdf(tmp_path / "d.nc", ALL_NAMES, n_time=6, seed=2)
    target = load_fme_target(ckpt, n_forward_steps=3)
    batches = list(target.batches(str(path), n_samples=3, batch_size=3, seed=0))
    data, times = batches[0].payload["data"], batches[0].payload["time"]
    assert data["h"].shape == (3, 4, 16, 32)  # all three windows of 4 consecutive times in 6
    ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    for j in range(3):
        np.testing.assert_array_equal(data["h"][j].numpy(), ds["h"].values[j:j + 4])
        assert list(times[j]) == list(ds["time"].values[j:j + 4])
    with pytest.raises(DataError, match="only 3 sample"):
        list(target.batches(str(path), n_samples=4, batch_size=1, seed=0))
    short = write_netcdf(tmp_path / "short.nc", ALL_NAMES, n_time=3)
    with pytest.raises(DataError, match="only 0 sample"):
        list(target.batches(str(short), n_samples=1, batch_size=1, seed=0))


def test_coupling_routes_through_the_rollout(ckpt):
    """Coupling's full-loss row is the gradient of fme's per-step losses, step-weighted and summed."""
    from specprobe.probing.coupling import coupling_gradients

    target = load_fme_target(ckpt, n_forward_steps=2)
    sums, params, _, _ = coupling_gradients(target, variants=[], n_samples=2, batch_size=2, n_ensemble=2, seed=0, n_bands=2)
    from specprobe.models.fme.rollout import generate_rollout

    batch = _batch(target)
    fme_loss = target.fme_step_loss(None, crps_weight=0.0, energy_score_weight=1.0)
    total = sum(w * fme_loss(g, t, step=0).total() for _, g, t, w in generate_rollout(target, batch, n_ensemble=2, seed=0))
    grads = torch.autograd.grad(total, [p.tensor for p in params])
    for a, b, p in zip(sums["baseline"]["full"], grads, params):
        assert _rel(bin_by_degree(a, p.degree_axis), bin_by_degree(b, p.degree_axis)) <= 1e-5, p.name


@pytest.mark.parametrize("options,match", [
    ({"n_forward_steps": 0}, "--n-forward-steps: expected an integer >= 1, got 0"),
    ({"n_forward_steps": 2, "pushforward_steps": 2}, "must be less than n_forward_steps"),
    ({"n_forward_steps": 2, "pushforward_steps": 1, "optimize_last_step_only": True}, "cannot be combined"),
])
def test_bad_rollout_values(options, match, ckpt):
    with pytest.raises(SpecprobeError, match=match):
        load_fme_target(ckpt, **options)


def test_bad_rollout_values_on_the_command_line(ckpt, tmp_path):
    from typer.testing import CliRunner

    from specprobe.cli import app

    for args, needle in ((["--n-forward-steps", "2"], "apply to fme checkpoints only"),
                         ([str(ckpt), "--n-forward-steps", "-1"], "expected an integer >= 1")):
        r = CliRunner().invoke(app, ["grad-by-l", "--out", str(tmp_path / "o"), "--n-samples", "1", *args])
        assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert needle in r.stderr
