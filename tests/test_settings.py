"""The settings objects: every field validated on construction (one line, before any file is read), flat
keywords routed to the family that owns them, and the object and keyword forms giving the same probe."""

import pytest

from specprobe.errors import SpecprobeError
from specprobe.models.fme.options import FmeOptions
from specprobe.models.options import LoadOptions
from specprobe.models.th.options import THOptions
from specprobe.probing.settings import LossSettings, ProbeSettings
from specprobe.spectral import WhiteningConfig


@pytest.mark.parametrize("fields, message", [
    ({"n_samples": 0}, "n_samples: expected an integer >= 1"),
    ({"n_ensemble": 1.5}, "n_ensemble: expected an integer >= 1"),
    ({"batch_size": True}, "batch_size: expected an integer >= 1"),
    ({"moment_elements": 1}, "moment_elements: expected an integer >= 2"),
    ({"other_params": "some"}, "other_params: expected 'all', 'baseline' or 'none'"),
    ({"r2_threshold": float("nan")}, "r2_threshold: expected a finite number"),
    ({"min_change": -0.1}, "min_change: expected a finite number >= 0"),
    ({"variants": ["per_sample:gamma=2"]}, "gamma"),
    ({"loss": {"crps_weight": 1}}, "loss: expected a LossSettings"),
])
def test_probe_settings_refuse_bad_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        ProbeSettings(**fields)


def test_probe_settings_parse_variants_once():
    # "per_sample" is gamma 0.5 (fme's default exponent): the same variant once; "none" is the baseline
    s = ProbeSettings(variants=["per_sample:gamma=0.5", "per_sample", "none", "per_sample:gamma=1"])
    assert [c.name for c in s.configs] == ["baseline", "per_sample(gamma=0.5,eps_frac=0.02)",
                                           "per_sample(gamma=1,eps_frac=0.02)"]
    assert all(isinstance(c, WhiteningConfig) for c in s.variants)
    assert ProbeSettings(variants=s.variants) == s  # parsed configs pass through unchanged
    assert ProbeSettings(variants="per_sample").variants == ProbeSettings().variants  # one string is one variant
    assert s.provenance()["variants"] == [c.name for c in s.configs]
    assert ProbeSettings(moment_elements=None).provenance()["moment_elements"] == "all"


def test_loss_settings_refuse_a_zero_energy_score():
    with pytest.raises(ValueError, match="energy_score_weight > 0"):
        LossSettings(energy_score_weight=0)


@pytest.mark.parametrize("fields, message", [
    ({"grid": "64by128"}, "--grid '64by128': expected NLATxNLON"),
    ({"grid": "64x128:cubed"}, "grid type must be one of"),
    ({"scale_factor": 0}, "--scale-factor 0: expected an integer >= 1"),
])
def test_th_options_refuse_bad_values(fields, message):
    with pytest.raises(SpecprobeError, match=message):
        THOptions(**fields)


@pytest.mark.parametrize("fields, message", [
    ({"n_forward_steps": 0}, "--n-forward-steps: expected an integer >= 1"),
    ({"pushforward_steps": -1}, "--pushforward-steps: expected an integer >= 0"),
    ({"labels": [1]}, "labels: expected label names"),
    ({"loss_weights": {"a": float("inf")}}, "loss_weights: expected finite numbers"),
    ({"degree_axis": ["no-equals-sign"]}, "--degree-axis 'no-equals-sign': expected PATTERN=AXIS"),
    ({"crps_weight": -1.0}, "crps_weight >= 0"),
])
def test_fme_options_refuse_bad_values(fields, message):
    with pytest.raises(SpecprobeError, match=message):
        FmeOptions(**fields)


def test_load_options_route_flat_keywords_to_their_family():
    o = LoadOptions.from_kwargs(trust_checkpoint=True, grid="32x64", n_forward_steps=2, labels=["cm4"],
                                degree_axis_overrides=["*.w=2"], time_stop=None)
    assert (o.trust, o.ema) == (True, False)
    assert o.th == THOptions(grid="32x64")
    assert o.fme.n_forward_steps == 2 and o.fme.labels == ("cm4",) and o.fme.degree_axis == {"*.w": 2}
    assert o.fme.time_stop is None  # None is unset, not a value
    assert o.given() == {"grid": "32x64", "n_forward_steps": 2, "labels": ("cm4",)}
    with pytest.raises(SpecprobeError, match="unknown checkpoint option 'gird'"):
        LoadOptions.from_kwargs(gird="32x64")


def test_object_and_keyword_forms_are_one_probe():
    """``probe(**fields)`` builds the same objects the CLI hands over; giving both is refused."""
    from specprobe.probing.api import probe

    kw = dict(variants=["per_sample:gamma=1"], n_samples=2, n_ensemble=2, timestamp=False)
    by_keywords = probe(None, **kw).to_dict()
    settings = ProbeSettings(variants=("per_sample:gamma=1",), n_samples=2, n_ensemble=2)
    by_objects = probe(None, settings=settings, options=LoadOptions(), timestamp=False).to_dict()
    for d in (by_keywords, by_objects):
        d["provenance"].pop("command_line")
    assert by_keywords == by_objects
    with pytest.raises(TypeError, match="give settings or its fields"):
        probe(None, settings=settings, n_samples=3)
    with pytest.raises(TypeError, match="give options or its fields"):
        probe(None, options=LoadOptions(), ema=True)


def test_options_of_the_other_family_are_refused_through_the_object(tmp_path):
    from specprobe.models.registry import load_target

    with pytest.raises(SpecprobeError, match="option\\(s\\) n_forward_steps apply to fme checkpoints only"):
        load_target(None, LoadOptions(fme=FmeOptions(n_forward_steps=2)))
    with pytest.raises(SpecprobeError, match="--ema: torch-harmonics SFNO files carry no EMA weights"):
        load_target(None, LoadOptions(ema=True))
