"""fme adapter vs fme itself, on real checkpoints written with fme's code (see fme_fixtures.py).

The oracle is fme's own loss path: ``Stepper.build_loss(StepLossConfig(type="EnsembleLoss", ...))``
-> ``StepLoss(gen, target, step=0).total()`` on the same generated fields, and ``TrainStepper.train_on_batch``
(fme's training step, the same seeded noise) for the whole forward.
"""

from __future__ import annotations

import pytest
import torch

from conftest import require

require("fme")

from fme_fixtures import (  # noqa: E402
    IN_NAMES,
    NLAT,
    OUT_NAMES,
    build_stepper,
    save_current,
    save_legacy,
    threads_for_module,  # noqa: F401 - module-scoped autouse fixture: one torch thread
)
from specprobe.models.fme.adapter import load_fme_target  # noqa: E402
from specprobe.models.fme.describe import describe_fme_checkpoint  # noqa: E402
from specprobe.models.safe_load import load_checkpoint_file  # noqa: E402
from specprobe.spectral import WhiteningConfig, bin_by_degree, energy_score_loss, ensemble_loss  # noqa: E402

pytestmark = pytest.mark.oracle

# name -> (builder, config, expected {leaf: (degree axis, n_degrees)}, l0_bypassed)
MODELS = {
    "groups_ratio": ("NoiseConditionedSFNO",
                     {"embed_dim": 8, "num_layers": 2, "noise_embed_dim": 4, "filter_num_groups": 2,
                      "spectral_ratio": 0.5, "filter_preserves_global_mean": True},
                     {"weight": (1, NLAT)}, True),
    "lora_isotropic": ("NoiseConditionedSFNO",
                       {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4, "spectral_lora_rank": 2,
                        "noise_type": "isotropic"},
                       {"weight": (1, NLAT), "lora_A": (1, NLAT), "lora_B": (1, NLAT)}, False),
    "makani_linear": ("NoiseConditionedSFNO",
                      {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4, "filter_type": "makani-linear"},
                      {"weight": (3, NLAT)}, False),
    "sfno_v010": ("SFNO-v0.1.0", {"embed_dim": 8, "num_layers": 1, "scale_factor": 2}, {"weight": (2, NLAT // 2)}, False),
    "legacy_sfno": ("SphericalFourierNeuralOperatorNet", {"embed_dim": 8, "num_layers": 1},
                    {"weight": (2, NLAT)}, False),
    "nonlinear_l_dependant": ("SphericalFourierNeuralOperatorNet",
                              {"embed_dim": 8, "num_layers": 1, "filter_type": "non-linear", "operator_type": "l-dependant"},
                              {"wout": (0, NLAT), "0": (0, NLAT)}, False),
}
WHITENINGS = [None, WhiteningConfig("per_sample", exponent=0.5)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fme_ckpts")
    out = {}
    for i, (name, (builder, config, _, _)) in enumerate(MODELS.items()):
        if name == "legacy_sfno":
            out[name], _ = save_legacy(d / "legacy_best_ckpt.tar", builder, config, seed=i, weights={"h": 2.0})
        else:
            out[name] = save_current(d / f"{name}_best_ckpt.tar", build_stepper(builder, config, seed=i))
    return out


@pytest.fixture(scope="module")
def targets(files):
    return {name: load_fme_target(path) for name, path in files.items()}


def _batch(target, n=2, seed=3):
    return next(iter(target.batches(None, n_samples=n, batch_size=n, seed=seed)))


def _f(t) -> float:
    return float(t.detach())


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_parameter_placed_as_fme_builds_it(name, targets, files):
    target = targets[name]
    _, _, expected, l0 = MODELS[name]
    params = target.parameters()
    trainable = {n for n, p in target.stepper.modules[0].named_parameters() if p.requires_grad}
    assert {p.name for p in params} == trainable  # every trainable parameter, named as in the checkpoint
    per_degree = [p for p in params if p.per_degree]
    assert per_degree
    for p in per_degree:
        leaf = p.name.rsplit(".", 1)[-1]
        assert leaf in expected, p.name
        assert (p.degree_axis, p.n_degrees) == expected[leaf]
        assert p.l0_bypassed == l0
        assert ".filter.filter." in p.name
    # non-spectral parts (encoder, decoder, MLPs, noise weights, projections) are reported, without axis
    others = {p.name for p in params if not p.per_degree}
    assert any("encoder" in n for n in others) and any("decoder" in n for n in others)
    if name == "groups_ratio":
        assert any(n.endswith("pre_proj.weight") for n in others) and any("W_scale_2d" in n for n in others)
    # the static description (no fme) places the same tensors on the same axes
    static = describe_fme_checkpoint(load_checkpoint_file(files[name]), files[name])
    assert {(p["name"], p["degree_axis"]) for p in static["spectral_parameters"]} == {(p.name, p.degree_axis) for p in per_degree}
    assert static["unplaced_filter_parameters"] == []


@pytest.mark.parametrize("whitening", WHITENINGS, ids=["baseline", "per_sample"])
@pytest.mark.parametrize("name", list(MODELS))
def test_loss_and_degree_gradients_match_fme(name, whitening, targets):
    target = targets[name]
    batch = _batch(target)
    gen_d, tgt_d = target.generate(batch, n_ensemble=3, seed=11)
    gen, tgt = target.to_loss_space(gen_d, tgt_d)
    assert gen.shape == (2, 3, len(OUT_NAMES), 16, 32) and tgt.shape == (2, 1, len(OUT_NAMES), 16, 32)
    assert target.channel_names == sorted(OUT_NAMES)
    if MODELS[name][0] == "NoiseConditionedSFNO":  # noise-conditioned: every member draws its own noise
        assert float((gen[:, 0] - gen[:, 1]).detach().abs().max()) > 1e-4
    ours = energy_score_loss(gen, tgt, whitening=whitening)
    theirs = target.fme_step_loss(whitening)(gen_d, tgt_d, step=0).total()
    assert abs(_f(ours) - _f(theirs)) <= 1e-6 * abs(_f(theirs))
    spectral = [p for p in target.parameters() if p.per_degree]
    g_ours = torch.autograd.grad(ours, [p.tensor for p in spectral], retain_graph=True)
    g_fme = torch.autograd.grad(theirs, [p.tensor for p in spectral])
    for p, a, b in zip(spectral, g_ours, g_fme):
        ba, bb = bin_by_degree(a, p.degree_axis), bin_by_degree(b, p.degree_axis)
        assert bb.max() > 0
        assert _rel(ba, bb) <= 1e-5, p.name
        if p.l0_bypassed:
            assert float(ba[0]) == 0.0  # filter_preserves_global_mean: l = 0 weight unused by design


def test_legacy_loss_weights_come_from_the_checkpoint(targets):
    target = targets["legacy_sfno"]
    assert target.loss_weights == {"h": 2.0}
    assert target.describe()["format"] == "fme-legacy"
    gen_d, tgt_d = target.generate(_batch(target), n_ensemble=2, seed=1)
    gen, tgt = target.to_loss_space(gen_d, tgt_d)
    unweighted = load_fme_target(target.path, loss_weights={}).to_loss_space(gen_d, tgt_d)
    for i, n in enumerate(target.channel_names):
        factor = 2.0 if n == "h" else 1.0
        torch.testing.assert_close(gen[:, :, i], factor * unweighted[0][:, :, i])
        torch.testing.assert_close(tgt[:, :, i], factor * unweighted[1][:, :, i])


def test_noise_is_reproducible_from_the_seed(targets):
    target = targets["groups_ratio"]
    batch = _batch(target)
    a, _ = target.forward(batch, n_ensemble=2, seed=5)
    b, _ = target.forward(batch, n_ensemble=2, seed=5)
    c, _ = target.forward(batch, n_ensemble=2, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _train_step_oracle(target, batch, *, n_ensemble, seed, loss_kwargs, params):
    """fme's TrainStepper.train_on_batch on the same batch and seeded noise: (loss, grads)."""
    from fme.ace.stepper.single_module import TrainStepper, TrainStepperConfig
    from fme.core.loss import StepLossConfig
    from fme.core.optimization import NullOptimization

    class Capture(NullOptimization):  # fme's training loop, with the optimizer step replaced by autograd.grad
        def set_mode(self, modules):
            for m in modules:
                m.train()

        def accumulate_loss(self, loss):
            self.loss = loss

        def step_weights(self):
            self.grads = torch.autograd.grad(self.loss, params)

    config = TrainStepperConfig(loss=StepLossConfig(type="EnsembleLoss", kwargs=loss_kwargs, weights=dict(target.loss_weights)),
                                n_ensemble=n_ensemble, n_forward_steps=1)
    train_stepper = TrainStepper(stepper=target.stepper, config=config)
    # fme's ForcingDeriver drops BatchData.stepper_state, so training noise comes from the global
    # torch RNG; on CPU a freshly seeded global RNG draws what our seeded generator draws.
    torch.manual_seed(seed)
    opt = Capture()
    train_stepper.train_on_batch(target._batch_data(batch), opt)
    return opt.loss, opt.grads


# crps_weight > 0 throughout: with crps_weight = 0, fme 2026.10.0's train_on_batch itself fails in
# LossOutput.get_channel_losses (fme broadcasts the energy-score term to a 6-D tensor and reduces it to
# (1, 1): the total is right, the per-channel split is not).
@pytest.mark.parametrize("name,whitening,crps_weight", [("groups_ratio", WHITENINGS[1], 0.1),
                                                        ("lora_isotropic", None, 0.1),
                                                        ("makani_linear", WHITENINGS[1], 0.5)])
def test_forward_is_fmes_training_step(name, whitening, crps_weight, targets):
    target = targets[name]
    batch = _batch(target, n=2, seed=9)
    spectral = [p for p in target.parameters() if p.per_degree]
    tensors = [p.tensor for p in spectral]
    gen, tgt = target.forward(batch, n_ensemble=2, seed=21)
    ours = ensemble_loss(gen, tgt, crps_weight=crps_weight, energy_score_weight=1.0, whitening=whitening)
    g_ours = torch.autograd.grad(ours, tensors)
    kwargs = {"crps_weight": crps_weight, "energy_score_weight": 1.0}
    if whitening is not None:
        kwargs["energy_score_whitening"] = whitening.to_dict()
    loss, g_fme = _train_step_oracle(target, batch, n_ensemble=2, seed=21, loss_kwargs=kwargs, params=tensors)
    assert abs(_f(ours) - _f(loss)) <= 1e-6 * abs(_f(loss))
    for p, a, b in zip(spectral, g_ours, g_fme):
        assert _rel(bin_by_degree(a, p.degree_axis), bin_by_degree(b, p.degree_axis)) <= 1e-5, p.name


def test_describe_is_json_and_complete(targets):
    import json

    info = targets["groups_ratio"].describe()
    json.dumps(info)
    assert info["builder"]["type"] == "NoiseConditionedSFNO"
    assert info["grid"]["nlat"] == 16 and info["grid"]["data_grid"] == "legendre-gauss"
    assert info["in_names"] == IN_NAMES and info["channel_names"] == sorted(OUT_NAMES)
    assert info["normalization"]["network"]["h"] == {"mean": 5500.0, "std": 300.0}
    assert info["normalization"]["residual"]["h"]["std"] == 30.0
    assert info["epoch"] == 3 and info["optimizer_state"] is False and info["ema_present"] is False
    assert info["timestep_seconds"] == 21600.0
    assert {p["degree_axis"] for p in info["spectral_parameters"]} == {1}


def test_label_conditional_model(tmp_path):
    from specprobe.errors import SpecprobeError

    stepper = build_stepper("NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4, "label_embed_dim": 3},
                            labels={"era5", "cm4"})
    path = save_current(tmp_path / "ckpt.tar", stepper)
    outs = {}
    for labels in (None, ("era5",), ("cm4",)):
        target = load_fme_target(path, labels=list(labels) if labels else None)
        batch = _batch(target, n=1)
        outs[labels] = target.forward(batch, n_ensemble=2, seed=0)[0].detach()
        assert target.describe()["labels"] == list(labels or [])
    assert not torch.equal(outs[None], outs[("era5",)]) and not torch.equal(outs[("era5",)], outs[("cm4",)])
    with pytest.raises(SpecprobeError, match=r"unknown label\(s\) \['nope'\]"):
        load_fme_target(path, labels=["nope"])
