"""The paired-noise judgement and the recommendation rule, on hand-made numbers (no torch, no model)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from specprobe.probing.recommend import (
    BEYOND,
    UNJUDGED,
    WITHIN,
    Rule,
    add_recommendation,
    judge_paired,
    recommend,
    rows_from_result,
    t975,
)

# ------------------------------------------------------------------ judge_paired


def test_judgement_statistics_are_the_textbook_ones():
    d = [0.010, 0.012, 0.008, 0.011]
    j = judge_paired(d)
    assert j["n"] == 4 and j["mean"] == pytest.approx(np.mean(d), rel=1e-15)
    assert j["sd"] == pytest.approx(np.std(d, ddof=1), rel=1e-12)
    assert j["se"] == pytest.approx(np.std(d, ddof=1) / 2, rel=1e-12)
    assert j["threshold"] == t975(3) == 3.182  # Student's t, 3 degrees of freedom
    assert j["same_sign"] is True and j["judgement"] == BEYOND


@pytest.mark.parametrize("diffs,k,expected", [
    ([0.5], None, UNJUDGED),                # one order: no paired noise, never "within noise"
    ([], None, UNJUDGED),
    ([0.5, float("nan")], None, UNJUDGED),  # a non-finite order does not count
    ([1.0, 1.2], None, WITHIN),             # mean 1.1, se 0.1: 11 se, but t(0.975, 1) = 12.7
    ([1.0, 1.1, 0.9], None, BEYOND),        # 17 se > t(0.975, 2) = 4.30
    ([1.0, 1.2], 2.0, BEYOND),              # a fixed multiple when one is given
    ([1.0, 3.0], 2.0, WITHIN),              # mean 2, se 1: exactly 2 se is not beyond
    ([1.0, 3.0], 1.9, BEYOND),
    ([-0.1, 0.5, 0.6], 0.5, WITHIN),        # signs differ over orders, whatever the multiple
    ([0.0, 0.0, 0.0], None, WITHIN),        # no difference at all
    ([-2.0, -2.1, -1.9], None, BEYOND),     # gains (negative) are judged alike
])
def test_judgement_branches(diffs, k, expected):
    assert judge_paired(diffs, k)["judgement"] == expected


def test_synthetic_arms_with_known_mean_and_sd():
    """Paired differences drawn with a known mean and sd: the se estimates sd/sqrt(n), an effect of
    8 se is called beyond noise in nearly every draw, a zero effect in about 5% (a paired t-test at
    5%), while a fixed 2 se would call a zero effect beyond noise in ~19% of 3-order sweeps."""
    rng = np.random.default_rng(0)
    n, sd, draws = 4, 0.02, 400
    real = [judge_paired(rng.normal(8 * sd / math.sqrt(n), sd, n).tolist()) for _ in range(draws)]
    null = [judge_paired(rng.normal(0.0, sd, n).tolist()) for _ in range(draws)]
    assert sum(j["judgement"] == BEYOND for j in real) >= 0.95 * draws
    assert sum(j["judgement"] == BEYOND for j in null) <= 0.08 * draws
    assert np.mean([j["mean"] for j in real]) == pytest.approx(8 * sd / math.sqrt(n), rel=0.05)
    c4 = 0.9213  # E[sample sd] = c4(4) sd
    assert np.mean([j["se"] for j in real]) == pytest.approx(c4 * sd / math.sqrt(n), rel=0.05)
    fixed = [judge_paired(rng.normal(0.0, sd, 3).tolist(), 2.0) for _ in range(draws)]
    assert sum(j["judgement"] == BEYOND for j in fixed) >= 0.12 * draws


def test_t_quantiles():
    assert [t975(df) for df in (1, 2, 3, 10, 11, 200)] == [12.706, 4.303, 3.182, 2.228, 2.228, 1.96]
    with pytest.raises(ValueError):
        t975(0)


# ------------------------------------------------------------------ a lookahead result from hand-made arms


def _result(effects: dict, *, orders=3, spread=0.001, intermediate=False, rollout=None, noise=None):
    """A lookahead result whose band values are built from known per-order differences.

    effects: {gamma: {(band, metric): [d_0, d_1, ...]}} relative to a checkpoint value of 1 in every
    band and metric; the baseline arm's value on order r is 1 + spread * (r - 1)."""
    bands, metrics = ("low", "mid", "high", "total"), ("energy_score", "mse")

    def values(delta):
        return {m: {b: {"overall": delta.get((b, m), 0.0), "channels": []} for b in bands} for m in metrics}

    arms = []
    variants = [("baseline", None)] + [(f"per_sample(gamma={g:g},eps_frac=0.02)", g) for g in effects]
    for r in range(orders):
        for name, g in variants:
            base = 1.0 + spread * (r - 1)
            delta = {key: base + (effects[g][key][r] if g is not None and key in effects[g] else 0.0)
                     for key in [(b, m) for b in bands for m in metrics]}
            arm = {"name": name if r == 0 else f"{name}#repeat{r}", "variant": name, "repeat": r,
                   "whitening": {"kind": "none", "exponent": None, "eps_frac": None} if g is None else
                   {"kind": "per_sample", "exponent": g, "eps_frac": 0.02},
                   "bands": values(delta)}
            if intermediate:
                arm["intermediate"] = {"5": values({k: base + 0.5 * (v - base) for k, v in delta.items()})}
            if rollout is not None:
                arm["rollout"] = rollout(g, r)
            arms.append(arm)
    table = {m: {b: {"checkpoint": 1.0, "noise": spread if noise is None else noise, "arms": {}} for b in bands}
             for m in metrics}
    return {"arms": arms, "table": table, "settings": {"steps": 10, "k": 2.0, "repeats": orders - 1}}


def _fx(low=(0.002, 0.002, 0.002), high=(-0.03, -0.031, -0.029), mid=(-0.004, -0.004, -0.004)):
    out = {}
    for b, d in (("low", low), ("mid", mid), ("high", high)):
        for m in ("energy_score", "mse"):
            out[(b, m)] = list(d)
    return out


def test_rows_reproduce_the_hand_made_differences():
    res = _result({0.5: _fx(low=(0.001, 0.002, 0.003))}, intermediate=True)
    (row,) = rows_from_result(res)
    j = row["bands"]["low"]["mse"]
    assert row["gamma"] == 0.5 and row["eps_frac"] == 0.02
    assert j["mean"] == pytest.approx(0.002, rel=1e-9) and j["se"] == pytest.approx(0.001 / math.sqrt(3), rel=1e-9)
    assert [x["steps"] for x in j["trajectory"]] == [5, 10]
    assert j["trajectory"][0]["mean"] == pytest.approx(0.001, rel=1e-9)  # half the effect at step 5
    assert j["trajectory"][1]["mean"] == pytest.approx(j["mean"], rel=1e-12)
    assert row["spread"]["low"]["mse"] == pytest.approx(0.001)


def _rec(effects, rule=Rule(), **kw):
    return recommend(rows_from_result(_result(effects, **kw)), rule)


def test_the_largest_qualifying_gamma_is_chosen():
    rec = _rec({0.2: _fx(low=(0.001,) * 3), 0.5: _fx(low=(0.004, 0.0045, 0.0035)),
                1.0: _fx(low=(0.008, 0.009, 0.007))})
    assert rec["chosen"] == "per_sample(gamma=0.5,eps_frac=0.02)" and rec["gamma"] == 0.5
    assert rec["qualifying"] == ["per_sample(gamma=0.2,eps_frac=0.02)", "per_sample(gamma=0.5,eps_frac=0.02)"]
    why = rec["reasons"]
    assert why["per_sample(gamma=0.2,eps_frac=0.02)"] == [
        "qualifies, but whiten(gamma=0.5,eps=0.02) has the larger gamma"]
    assert why["per_sample(gamma=1,eps_frac=0.02)"] == [
        "low-band energy score cost +0.80% exceeds --max-cost 0.50%",
        "low-band ensemble-mean MSE cost +0.80% exceeds --max-cost 0.50%"]
    assert why["per_sample(gamma=0.5,eps_frac=0.02)"][0].startswith("chosen: high-band gain energy score -3.00%")
    assert rec["summary"].startswith("recommendation: train with whiten(gamma=0.5,eps=0.02)")
    assert "the largest gamma" in rec["rule"]["text"] and rec["rule"]["max_cost"] == 0.005
    # the limit is the rule's: a looser --max-cost takes gamma 1
    assert _rec({0.5: _fx(low=(0.004,) * 3), 1.0: _fx(low=(0.008, 0.009, 0.007))},
                Rule(max_cost=0.01))["gamma"] == 1.0


def test_no_whitening_when_nothing_qualifies():
    rec = _rec({0.5: _fx(high=(-0.03, 0.01, -0.02)),            # gain within noise (signs differ)
                0.8: _fx(high=(0.02, 0.021, 0.019)),             # the high band got worse: no gain
                1.0: _fx(low=(0.02, 0.021, 0.019))})             # cost far beyond the limit
    assert rec["chosen"] is None and rec["choice"] == "no whitening" and rec["qualifying"] == []
    assert rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"][0].startswith(
        "high-band energy score gain -1.33% is within paired noise")
    assert "signs differ over orders" in rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"][0]
    assert rec["reasons"]["per_sample(gamma=0.8,eps_frac=0.02)"][0] == "no high-band energy score gain (+2.00%)"
    assert rec["summary"].startswith("recommendation: no whitening -- no arm meets the rule")
    assert recommend([], Rule())["summary"] == "recommendation: none (the sweep has no whitened arm)"


def test_one_order_leaves_every_gain_unjudged():
    rec = _rec({0.5: _fx(low=(0.001,), high=(-0.05,), mid=(-0.01,))}, orders=1)
    assert rec["choice"] == "no whitening"
    assert rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"][0] == (
        "high-band energy score -5.00% is unjudged (fewer than 2 batch orders)")


def test_cost_against_the_run_to_run_spread():
    effects = {0.5: _fx(low=(0.004,) * 3)}
    assert _rec(effects, Rule(max_cost="spread"), spread=0.005)["gamma"] == 0.5
    rec = _rec(effects, Rule(max_cost="spread"), spread=0.002)
    assert rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"][0] == (
        "low-band energy score cost +0.40% exceeds the run-to-run spread 0.20%")
    rec = _rec(effects, Rule(max_cost="spread"), noise=float("nan"))
    assert "no run-to-run spread" in rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"][0]


def test_ties_at_one_gamma_go_to_the_larger_gain():
    rows = rows_from_result(_result({0.5: _fx()}))
    other = rows_from_result(_result({0.5: _fx(high=(-0.05, -0.051, -0.049))}))[0]
    other["arm"], other["eps_frac"] = "per_sample(gamma=0.5,eps_frac=0.05)", 0.05
    rec = recommend(rows + [other], Rule())
    assert rec["chosen"] == "per_sample(gamma=0.5,eps_frac=0.05)"
    assert rec["reasons"]["per_sample(gamma=0.5,eps_frac=0.02)"] == [
        "qualifies, but whiten(gamma=0.5,eps=0.05) has the larger high-band gain at the same gamma"]


def _rollout(pr_high: dict, first: dict, nonfinite=()):
    """Per (gamma, order): the rollout health dict rollout_health writes (drift at the last lead)."""
    def make(g, r):
        high = pr_high[g][r] if isinstance(pr_high[g], list) else pr_high[g]
        return {"drift": {"lead": 20, "power_ratio": {"low": 1.1, "mid": 1.8, "high": high, "total": 1.4},
                          "mse": {"low": 10.0, "mid": 6.0, "high": 0.02, "total": 5.0}},
                "first_blow_up_lead": first[g],
                "blow_up_reasons": [["non-finite values"]] if g in nonfinite else [[]]}
    return make


def test_rollout_health_rejects_drift_blow_up_and_non_finite_arms():
    effects = {0.2: _fx(), 0.5: _fx(), 0.8: _fx(), 1.0: _fx()}
    roll = _rollout({None: 30.0, 0.2: 28.0, 0.5: [40.0, 41.0, 42.0], 0.8: 25.0, 1.0: 20.0},
                    {None: 9, 0.2: 10, 0.5: 9, 0.8: 7, 1.0: 12}, nonfinite=(1.0,))
    rec = _rec(effects, rollout=roll)
    assert rec["chosen"] == "per_sample(gamma=0.2,eps_frac=0.02)" and rec["rollout_checked"]
    why = rec["reasons"]
    assert why["per_sample(gamma=0.5,eps_frac=0.02)"] == [
        "rollout high-band power-ratio drift at lead 20 worse than the baseline's beyond paired noise (+0.312 ± 0.014)"]
    assert why["per_sample(gamma=0.8,eps_frac=0.02)"] == [
        "rollout blows up earlier than the baseline's (lead 7 vs 9)"]
    assert why["per_sample(gamma=1,eps_frac=0.02)"] == ["rollout became non-finite"]
    row = next(r for r in rows_from_result(_result(effects, rollout=roll)) if r["gamma"] == 0.5)
    assert row["rollout"]["drift"]["high"]["power_ratio"]["mean"] == pytest.approx(
        np.mean([math.log(x) - math.log(30.0) for x in (40.0, 41.0, 42.0)]), rel=1e-12)
    # with the rollout check off, the rule looks at the one-step scores alone
    assert _rec(effects, Rule(check_rollout=False), rollout=roll)["gamma"] == 1.0
    # no rollout measured: the arm is not rejected for it, and the summary says it was not checked
    rec = _rec({0.5: _fx()})
    assert rec["chosen"] and not rec["rollout_checked"] and rec["summary"].endswith("rollout health not checked")


def test_rule_validation_and_round_trip():
    with pytest.raises(ValueError, match="max_cost"):
        Rule(max_cost=-1)
    with pytest.raises(ValueError, match="max_cost"):
        Rule(max_cost="lots")
    with pytest.raises(ValueError, match="k: expected"):
        Rule(k=0)
    rule = Rule(max_cost=0.01, k=2.5, gain_metrics=["energy_score"], check_rollout=False)
    assert Rule.from_dict(rule.to_dict()) == rule


def test_add_recommendation_recomputes_from_a_result_dict():
    res = _result({0.5: _fx(low=(0.004,) * 3)})
    add_recommendation(res)
    assert res["recommendation"]["gamma"] == 0.5 and res["sweep"][0]["arm"] == "per_sample(gamma=0.5,eps_frac=0.02)"
    add_recommendation(res, Rule(max_cost=0.001))
    assert res["recommendation"]["choice"] == "no whitening"


def test_the_recommendation_module_does_not_import_torch():
    code = ("import sys, specprobe.probing.recommend, specprobe.report.lookahead_report; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_chosen_arm_whose_cost_still_grows_carries_a_caution():
    """The cost at the last step undersells a cost that is still growing (on the bundled model gamma 0.5's
    low-band MSE was +0.47% at 40 steps and +1.37% at 150): the decision says so, with the trajectory."""
    res = _result({0.5: _fx()}, intermediate=True)  # the 5-step differences are half the 10-step ones
    rec = add_recommendation(res)["recommendation"]
    assert rec["chosen"] == "per_sample(gamma=0.5,eps_frac=0.02)"  # the caution does not change the choice
    assert rec["caution"] == (
        "caution: its low-band cost was still growing at the last step (energy score +0.10% at 5 steps, +0.20% "
        "at 10; ensemble-mean MSE +0.10% at 5 steps, +0.20% at 10); a longer lookahead (--steps 40) shows "
        "where it settles before a long run relies on it")
    assert rec["summary"].endswith("; " + rec["caution"])
    assert rec["reasons"][rec["chosen"]][-1] == rec["caution"]
    # the longer run keeps the passes over the training pairs: 4x the steps on 4x the pool
    res["data"] = {"train": {"pairs": 20}}
    assert "(--steps 40 --n-train 80)" in add_recommendation(res)["recommendation"]["caution"]
    for arm in res["arms"]:  # settled: the same differences at 5 and 10 steps
        arm["intermediate"]["5"] = arm["bands"]
    assert add_recommendation(res)["recommendation"]["caution"] is None
    assert add_recommendation(_result({0.5: _fx()}))["recommendation"]["caution"] is None  # no trajectory
