"""Optimizer-aware statistics (direction cosine, steady-state Adam step, switch step) against closed forms
and against per-sample gradients taken with plain torch.autograd, without the engine."""

import math

import numpy as np
import pytest
import torch

from gain_model import GainTarget, closed_form_gradient
from specprobe.models.base import OptimizerSettings
from specprobe.probing.engine import run_probe
from specprobe.probing.optstats import fade_steps, parameter_group
from specprobe.probing.result import ProbeResult

GAMMA1 = "per_sample(gamma=1,eps_frac=0.02)"


class RescaleTarget(GainTarget):
    """Every sample and channel has the same target field, so per-sample whitening is one fixed factor f(l):
    each degree's loss is multiplied by f(l), and the gain at degree l feels only that degree's loss.
    The whitened gradient is then exactly f(l) times the baseline's, element by element."""

    def __init__(self, optimizer=None, **kw):
        super().__init__(**kw)
        red = (torch.arange(self.nlat, dtype=torch.float64) + 1.0)[:, None] ** -1.5  # a red spectrum, like the atmosphere's
        y0 = self.isht(self.sht(self.y[:1, :1]) * red)
        self.y = y0.expand_as(self.y).clone()
        self._optimizer = optimizer
        self._state = None

    def optimizer_settings(self):
        return self._optimizer

    def optimizer_state(self):
        return self._state


class MixingTarget(RescaleTarget):
    """The same, followed by a pointwise nonlinearity: a degree's gain now feeds the loss at other degrees."""

    def forward(self, batch, *, n_ensemble, seed):
        gen, tgt = super().forward(batch, n_ensemble=n_ensemble, seed=seed)
        return gen + 0.5 * gen**2, tgt


def test_pure_rescale_scales_sgd_steps_keeps_adam_steps_and_direction():
    from specprobe.spectral import whitening_factor

    # eps 1e-10: Adam's eps breaks the rescale invariance by about eps / RMS(g), and this model's whitened
    # low-degree gradients are ~1e-3 (with torch's eps 1e-8 the ratio is 1 - 9e-6 there)
    eps = 1e-10
    target = RescaleTarget(optimizer=OptimizerSettings(name="Adam", eps=eps), channels=3, n_total=6)
    result = run_probe(target, variants=["per_sample:gamma=1"], n_samples=6, n_ensemble=1, batch_size=2)
    x_hat, y_hat = target.x_hat(6)
    f = whitening_factor(y_hat[:, None], gamma=1.0)[..., 0].numpy()  # (B, C, L)
    assert np.allclose(f, f[:1, :1])  # one factor per degree: the premise of this model
    f = f[0, 0]
    assert f.max() / f.min() > 3  # and far from uniform
    # SGD: the step is -lr * gradient, so it scales by f(l) exactly (closed form times f)
    expected = np.sqrt(((closed_form_gradient(target, 6) * f) ** 2).sum(axis=0))
    np.testing.assert_allclose(result.grad_by_l[GAMMA1]["total"], expected, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(result.grad_by_l[GAMMA1]["total"]) / result.grad_by_l["baseline"]["total"],
                               f, rtol=1e-9)
    # steady-state Adam: |E g| / sqrt(E g^2) is invariant to a constant rescale
    np.testing.assert_allclose(result.adam_step_by_l[GAMMA1]["ratio"]["total"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(result.adam_step_by_l[GAMMA1]["ratio"]["layers"]["gain"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(result.direction_cosine_by_l[GAMMA1]["total"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.direction_cosine_by_l["baseline"]["total"], 1.0, rtol=0, atol=1e-12)
    view = result.stats["optimizer_view"]["variants"][GAMMA1]
    assert view["cosine"]["high"] == pytest.approx(1, abs=1e-12)
    assert view["adam_step_ratio"]["high"] == pytest.approx(1, rel=1e-6)
    # and the steady-state step itself is the closed form: mean over channels of |E g| / (sqrt(E g^2) + eps)
    per = np.stack([closed_form_gradient(_one(target, s), 1) for s in range(6)])  # (N, C, L)
    step = np.abs(per.mean(0)) / (np.sqrt((per**2).mean(0)) + eps)
    np.testing.assert_allclose(result.adam_step_by_l["baseline"]["total"], step.mean(0), rtol=1e-9)


def test_a_model_that_mixes_degrees_changes_the_direction():
    target = MixingTarget(channels=4, n_total=6)
    result = run_probe(target, variants=["per_sample:gamma=1"], n_samples=6, n_ensemble=1, batch_size=3)
    cos = np.asarray(result.direction_cosine_by_l[GAMMA1]["total"])
    assert np.all(cos <= 1 + 1e-12)
    assert cos.min() < 0.99  # measured 0.3-0.98 here; the pure rescale above gives 1 to 1e-12
    ratio = np.asarray(result.adam_step_by_l[GAMMA1]["ratio"]["total"])
    assert np.abs(ratio - 1).max() > 1e-3  # no longer a pure rescale: the Adam step changes too


def test_switch_step_is_adams_update_with_the_stored_second_moment():
    target = RescaleTarget(optimizer=OptimizerSettings(name="Adam", eps=1e-3, betas=(0.9, 0.99)), n_total=4)
    g = torch.Generator().manual_seed(3)
    v = torch.rand(target.gain.shape, generator=g, dtype=torch.float64) * 1e-3
    t, beta2, eps = 37, 0.99, 1e-3
    target._state = {"gain": {"exp_avg_sq": v, "step": t, "beta2": beta2, "eps": eps}}
    result = run_probe(target, variants=["per_sample:gamma=1"], n_samples=4, n_ensemble=1)
    grad = closed_form_gradient(target, 4)  # (C, L): the mean gradient of the baseline loss
    # Adam's update for gradient g after bias correction of the stored v: g / (sqrt(v / (1 - beta2^t)) + eps)
    update = grad / (np.sqrt(v.numpy() / (1 - beta2**t)) + eps)
    switch = result.switch_step_by_l["variants"]
    np.testing.assert_allclose(switch["baseline"]["total"], np.abs(update).mean(0), rtol=1e-9)
    np.testing.assert_allclose(switch["baseline"]["layers"]["gain"], np.abs(update).mean(0), rtol=1e-9)
    # the steady-state step used the optimizer's eps (1e-3 here, not torch's default)
    per = np.stack([closed_form_gradient(_one(target, s), 1) for s in range(4)])
    step = np.abs(per.mean(0)) / (np.sqrt((per**2).mean(0)) + eps)
    np.testing.assert_allclose(result.adam_step_by_l["baseline"]["total"], step.mean(0), rtol=1e-9)
    fade = result.switch_step_by_l["fade"]
    assert fade["checkpoint_step"] == t and fade["beta2"] == beta2
    assert beta2 ** fade["steps_to_fraction"] == pytest.approx(0.1, rel=1e-12)
    assert beta2 ** fade["time_constant_steps"] == pytest.approx(math.exp(-1), rel=1e-12)
    assert "switch_step_ratio" in result.stats["optimizer_view"]["variants"][GAMMA1]
    # an SGD-trained model carries no Adam switch step, and its verdict speaks of SGD
    sgd = RescaleTarget(optimizer=OptimizerSettings(name="SGD"), n_total=4)
    sgd._state = target._state
    plain = run_probe(sgd, variants=["per_sample:gamma=1"], n_samples=4, n_ensemble=1)
    assert plain.switch_step_by_l == {}
    from specprobe.report.tables import verdict

    lines = verdict(plain)
    assert lines[0].startswith("under SGD") and "raw gradient" in lines[2] and "SGD" in lines[2]


def test_fade_steps_for_adam_default():
    fade = fade_steps(0.999)
    assert fade["time_constant_steps"] == pytest.approx(999.5, rel=1e-4)
    assert fade["steps_to_fraction"] == pytest.approx(2301.4, rel=1e-4)


@pytest.mark.parametrize("name, group", [
    ("encoder.0.weight", "encoder"), ("decoder.0.weight", "decoder"), ("pos_embed.position_embeddings", "position embedding"),
    ("blocks.1.mlp.fwd.0.bias", "MLPs"), ("module.conditional_model.blocks.0.norm0.W_scale_2d.weight", "noise weights"),
    ("module.conditional_model.blocks.0.inner_skip.weight", "skips"), ("module.conditional_model.encoder.2.weight", "encoder"),
    ("module.conditional_model.blocks.1.filter.filter.bias", "filter (other)"),
    ("secondary_decoder.0.module.mlp.0.weight", "decoder"), ("blocks.0.norm1.weight", "norms"),
])
def test_parameter_groups_from_names(name, group):
    assert parameter_group(name) == group


def _one(target, s):
    t = GainTarget.__new__(GainTarget)
    t.__dict__.update(target.__dict__)
    t.x, t.y = target.x[s:s + 1], target.y[s:s + 1]
    return t


# ------------------------------------------------------------------ independent computation


def _per_sample_grads(target, variants, n_samples, n_ensemble, loss_fn):
    """{variant: {param: (N, *real shape) float64}} by one forward + backward per sample and variant."""
    params = target.parameters()
    out = {name: {p.name: [] for p in params} for name, _ in variants}
    for i, batch in enumerate(target.batches(None, n_samples=n_samples, batch_size=1, seed=0)):
        for name, whitening in variants:
            gen, tgt = target.forward(batch, n_ensemble=n_ensemble, seed=i)  # the engine's seed for batch i, seed 0
            grads = torch.autograd.grad(loss_fn(gen, tgt, whitening), [p.tensor for p in params], allow_unused=True)
            for p, g in zip(params, grads):
                g = torch.zeros_like(p.tensor) if g is None else g
                g = torch.view_as_real(g) if g.is_complex() else g
                out[name][p.name].append(g.detach().double().numpy())
    return {v: {k: np.stack(x) for k, x in d.items()} for v, d in out.items()}, params


def _reference_stats(grads, params, variant, eps, state=None):
    """Pooled per-degree cosine, mean Adam step per degree, non-spectral cosine, switch step, in numpy."""
    n_deg = max(p.n_degrees for p in params if p.per_degree)
    dot, aa, bb, step, count, sw = (np.zeros(n_deg) for _ in range(6))
    o_dot = o_aa = o_bb = 0.0
    for p in params:
        gv, gb = grads[variant][p.name], grads["baseline"][p.name]
        a, b = gv.mean(0), gb.mean(0)
        s = np.abs(a) / (np.sqrt((gv**2).mean(0)) + eps)
        if not p.per_degree:
            o_dot, o_aa, o_bb = o_dot + (a * b).sum(), o_aa + (a * a).sum(), o_bb + (b * b).sum()
            continue
        rows = lambda t: np.moveaxis(t, p.degree_axis, 0).reshape(t.shape[p.degree_axis], -1)  # noqa: E731
        ra, rb, rs = rows(a), rows(b), rows(s)
        dot += (ra * rb).sum(1)
        aa += (ra * ra).sum(1)
        bb += (rb * rb).sum(1)
        step += rs.sum(1)
        count += ra.shape[1]
        if state is not None:
            v, t, beta2, eps_s = state[p.name]
            sw += rows(np.abs(a) / (np.sqrt(v / (1 - beta2**t)) + eps_s)).sum(1)
    return {"cos": dot / np.sqrt(aa * bb), "step": step / count, "other": o_dot / math.sqrt(o_aa * o_bb),
            "switch": sw / count}


def test_engine_matches_plain_autograd_on_the_bundled_sfno():
    from specprobe.models.registry import load_target, resolve_checkpoint
    from specprobe.spectral import WhiteningConfig, energy_score_loss

    target = load_target(resolve_checkpoint(None), device=torch.device("cpu"))
    assert target.optimizer_settings().name == "Adam"  # the bundled model's training metadata
    w = WhiteningConfig("per_sample", exponent=0.5)
    result = run_probe(target, variants=[w], n_samples=3, n_ensemble=2, batch_size=1, seed=0)
    grads, params = _per_sample_grads(target, [("baseline", None), (w.name, w)], 3, 2,
                                      lambda gen, tgt, wh: energy_score_loss(gen, tgt, whitening=wh))
    ref = _reference_stats(grads, params, w.name, 1e-8)
    # The engine accumulates in the gradients' float32 (Welford; issue 11), the reference in float64.
    np.testing.assert_allclose(result.direction_cosine_by_l[w.name]["total"], ref["cos"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.adam_step_by_l[w.name]["total"], ref["step"], rtol=1e-5)
    assert result.direction_cosine_by_l[w.name]["groups"]["all"] == pytest.approx(ref["other"], abs=1e-6)
    assert ref["cos"][1:9].mean() < 0.95  # the finding is not trivial: low degrees re-aim
    assert set(result.direction_cosine_by_l[w.name]["groups"]) >= {"encoder", "decoder", "MLPs", "all"}


def test_result_json_round_trip_and_old_files_still_load():
    result = run_probe(RescaleTarget(optimizer=OptimizerSettings(name="Adam")), variants=["per_sample:gamma=1"],
                       n_samples=3, n_ensemble=1)
    d = result.to_dict()
    for key in ("direction_cosine_by_l", "adam_step_by_l", "optimizer"):
        assert d[key], key
    again = ProbeResult.from_dict(d)
    assert again.adam_step_by_l[GAMMA1]["ratio"]["total"] == pytest.approx(result.adam_step_by_l[GAMMA1]["ratio"]["total"])
    from specprobe.report.tables import verdict

    assert verdict(again)[0].startswith("under Adam")
    # a file written before these statistics: no new keys, stats without optimizer_view
    for key in ("direction_cosine_by_l", "adam_step_by_l", "switch_step_by_l", "optimizer"):
        d.pop(key)
    d["stats"].pop("optimizer_view")
    old = ProbeResult.from_dict(d)
    assert old.direction_cosine_by_l == {} and verdict(old)[0].startswith("raw gradient")


def test_fme_ckpt_switch_step_uses_the_checkpoints_adam_state(tmp_path_factory):
    from conftest import require

    require("fme")
    from fme.core.optimization import OptimizationConfig
    from fme_fixtures import one_thread, trained_run

    from specprobe.models.fme.adapter import load_fme_target
    from specprobe.models.safe_load import load_checkpoint_file
    from specprobe.spectral import WhiteningConfig, energy_score_loss

    run = trained_run(str(tmp_path_factory.getbasetemp() / "fme_trained"))
    path = run / "training_checkpoints" / "ckpt.tar"
    with one_thread():
        target = load_fme_target(path)
        settings = target.optimizer_settings()
        assert settings.name == "Adam" and settings.source.startswith("type: ") and "config.yaml" in settings.source
        w = WhiteningConfig("per_sample", exponent=0.5)
        result = run_probe(target, variants=[w], n_samples=2, n_ensemble=2, batch_size=1, seed=0)
        grads, params = _per_sample_grads(target, [("baseline", None), (w.name, w)], 2, 2,
                                          lambda gen, tgt, wh: energy_score_loss(gen, tgt, whitening=wh))
    # fme's own resume path restores the optimizer state; its second moments are the oracle
    obj = load_checkpoint_file(path)
    optimization = OptimizationConfig(optimizer_type="Adam", lr=1e-3).build(target.stepper.modules, max_epochs=1)
    optimization.load_state(obj["optimization"])
    group = optimization.optimizer.param_groups[0]
    beta2, eps = group["betas"][1], group["eps"]
    assert settings.eps == eps
    state = {}
    for p in params:
        st = optimization.optimizer.state[p.tensor]
        state[p.name] = (st["exp_avg_sq"].double().numpy(), float(st["step"]), beta2, eps)
    for variant in ("baseline", w.name):
        ref = _reference_stats(grads, params, variant, eps, state)
        got = result.switch_step_by_l["variants"][variant]["total"]
        np.testing.assert_allclose(got, ref["switch"], rtol=1e-6)
        np.testing.assert_allclose(result.adam_step_by_l[variant]["total"], ref["step"], rtol=1e-6)
        np.testing.assert_allclose(result.direction_cosine_by_l[variant]["total"], ref["cos"], rtol=0, atol=1e-6)
    fade = result.switch_step_by_l["fade"]
    assert fade["beta2"] == beta2 and fade["checkpoint_step"] == int(float(st["step"]))
    groups = result.direction_cosine_by_l[w.name]["groups"]
    assert {"encoder", "decoder", "MLPs", "noise weights", "all"} <= set(groups)


@pytest.mark.parametrize("raw, adam, words", [
    (3.9, 1.03, "Adam divides the larger raw gradient away"),
    (1.01, 1.04, "Whitening barely changes the raw high-degree gradient"),  # nothing to divide away
    (3.9, 1.6, "Adam still changes the high-degree step 1.60x"),
])
def test_interpretation_says_what_the_adam_step_does(raw, adam, words):
    from types import SimpleNamespace

    from specprobe.report.tables import interpretation

    result = SimpleNamespace(stats={"boost": {"w": {"high": raw}}})
    view = {"adam_step_ratio": {"high": adam}, "cosine": {"low": 0.7, "high": 0.95}, "cosine_groups": {"all": 0.9}}
    line = interpretation(result, "w", view, adaptive=True)
    assert line.startswith(words) and line.endswith("most at low degrees (cos 0.70).")
