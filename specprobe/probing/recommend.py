"""Which whitening to train with: judge a lookahead sweep against paired noise and pick an arm.

Pure functions on plain numbers and dicts (no torch): the same code judges a fresh sweep, a
``lookahead.json`` read back from disk (``specprobe compare``) and hand-made tables in tests.

The noise of an arm's effect. Every arm of a sweep trains on the same batch orders and noise seeds
(one *order* = one repeat). For each order o the paired difference d_o = (arm_o - baseline_o) /
|checkpoint| removes what the order does to both arms; what is left varies over orders only by how
the order interacts with the whitening. Over n >= 2 orders:

    mean = mean_o d_o,  sd = sample standard deviation (ddof 1),  se = sd / sqrt(n)
    beyond noise  <=>  |mean| > t * se  AND  every d_o has the sign of the mean

with t the two-sided 95% quantile of Student's t with n - 1 degrees of freedom (12.71 for 2 orders,
4.30 for 3, 3.18 for 4; a paired t-test at 5%), or a fixed multiple k when one is given. A fixed
k = 2 would call a null effect "beyond noise" in ~30% of 2-order and ~19% of 3-order sweeps; with t
it is at most 5% (tests/test_recommend.py measures it). With fewer than 2 orders the difference is
*unjudged* (no paired noise exists), never "within noise". The spread of one arm rerun on another
order (repeat - baseline) is a different question -- would a rerun of the same training move the
score this much? -- and is reported separately as the run-to-run spread of one arm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

BEYOND = "beyond noise"
WITHIN = "within noise"
UNJUDGED = "unjudged"

JUDGEMENT_RULE = ("paired difference d_o = (arm - baseline) / |checkpoint| on the same batch order o; over n >= 2 "
                  "orders: se = sd(d, ddof 1) / sqrt(n); beyond noise iff |mean(d)| > {threshold} se and every d_o has "
                  "the sign of the mean; fewer than 2 orders: unjudged")

# Two-sided 95% quantiles of Student's t by degrees of freedom (between rows: the smaller df's, conservative).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (1.96 beyond 120).

    Between tabulated rows the smaller df's (larger, conservative) quantile is used.

    Args:
        df: degrees of freedom, >= 1.

    Returns:
        The quantile, e.g. 12.706 for df = 1, 4.303 for df = 2.

    Raises:
        ValueError: ``df`` < 1.
    """
    if df < 1:
        raise ValueError(f"df: expected >= 1, got {df}")
    if df > 120:
        return 1.960
    return _T975[max(d for d in _T975 if d <= df)]


def threshold_text(k: float | None) -> str:
    """The judgement threshold as text: ``k`` (``"2"``), or ``"t(0.975, n - 1)"`` when ``k`` is None."""
    return f"{k:g}" if k is not None else "t(0.975, n - 1)"


def judge_paired(diffs: Iterable[float | None], k: float | None = None) -> dict:
    """The paired judgement of one arm - baseline difference from its per-order values.

    Beyond noise iff |mean| > threshold * se and every value has the sign of the mean (see the module
    docstring).

    Args:
        diffs: the paired difference of each batch order; None and non-finite values are left out.
        k: a fixed multiple of se as the threshold; None (default): Student's t quantile
            ``t975(n - 1)``.

    Returns:
        ``{"n", "mean", "sd", "se", "threshold", "same_sign", "judgement"}``: n counts the finite values;
        mean is None for no values, sd/se/threshold/same_sign are None below 2 values, and judgement is
        "beyond noise", "within noise" or "unjudged" (fewer than 2 finite values).
    """
    values = [float(d) for d in diffs if d is not None and math.isfinite(float(d))]
    n = len(values)
    out = {"n": n, "mean": sum(values) / n if n else None, "sd": None, "se": None, "threshold": None,
           "same_sign": None, "judgement": UNJUDGED}
    if n < 2:
        return out
    mean = out["mean"]
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    threshold = float(k) if k is not None else t975(n - 1)
    same = mean != 0 and all(v * mean > 0 for v in values)
    out.update(sd=sd, se=se, threshold=threshold, same_sign=same,
               judgement=BEYOND if (abs(mean) > threshold * se and same) else WITHIN)
    return out


# ------------------------------------------------------------------ the rule


@dataclass(frozen=True)
class Rule:
    """Which arm to recommend (see :func:`recommend`); every knob is stated in the JSON.

    Attributes:
        max_cost: the largest acceptable worsening of ``cost_band`` (relative to the checkpoint's value,
            e.g. 0.005 = 0.5%, the default: docs/lookahead.md says why) in every ``cost_metrics``; or
            "spread": the run-to-run spread of one arm in that band and metric.
        k: None (default) judges against Student's t quantile (see :func:`judge_paired`), a number > 0
            against that multiple of se.
        gain_band: the band whose gains qualify an arm (default ``"high"``).
        cost_band: the band whose cost is capped by ``max_cost`` (default ``"low"``).
        gain_metrics: the metrics that must all gain beyond noise in ``gain_band`` (default energy score and
            MSE); lists are stored as tuples.
        cost_metrics: the metrics whose cost in ``cost_band`` is capped (default energy score and MSE).
        rollout_metric: the rollout drift metric judged against the baseline's (default ``"power_ratio"``).
        check_rollout: require healthy rollouts when they were measured (default True).

    Raises:
        ValueError: on construction, ``max_cost`` is neither a finite fraction >= 0 nor "spread", or ``k``
            is neither None nor a finite number > 0.
    """

    max_cost: float | str = 0.005
    k: float | None = None
    gain_band: str = "high"
    cost_band: str = "low"
    gain_metrics: tuple = ("energy_score", "mse")
    cost_metrics: tuple = ("energy_score", "mse")
    rollout_metric: str = "power_ratio"
    check_rollout: bool = True

    def __post_init__(self):
        if isinstance(self.max_cost, str):
            if self.max_cost != "spread":
                raise ValueError(f"max_cost: expected a fraction >= 0 or 'spread', got {self.max_cost!r}")
        elif not (isinstance(self.max_cost, (int, float)) and self.max_cost >= 0 and math.isfinite(self.max_cost)):
            raise ValueError(f"max_cost: expected a fraction >= 0 or 'spread', got {self.max_cost!r}")
        if self.k is not None and not (isinstance(self.k, (int, float)) and self.k > 0 and math.isfinite(self.k)):
            raise ValueError(f"k: expected a number > 0 or None, got {self.k!r}")
        object.__setattr__(self, "gain_metrics", tuple(self.gain_metrics))
        object.__setattr__(self, "cost_metrics", tuple(self.cost_metrics))

    def text(self) -> str:
        """The rule in one English sentence (the JSON's ``rule.text``)."""
        cost = ("the run-to-run spread of one arm" if self.max_cost == "spread" else f"{100 * self.max_cost:g}%")
        parts = [f"the largest gamma whose {self.gain_band}-band {' and '.join(_M[m] for m in self.gain_metrics)} "
                 f"gains are beyond paired noise (|mean| > {threshold_text(self.k)} se, one sign in every order)",
                 f"whose {self.cost_band}-band {' and '.join(_M[m] for m in self.cost_metrics)} cost stays at or "
                 f"below {cost}"]
        if self.check_rollout:
            parts.append(f"whose rollout stays finite, does not blow up earlier than the baseline's, and has a "
                         f"{_M.get(self.rollout_metric, self.rollout_metric)} drift at the last lead not worse than "
                         "the baseline's beyond paired noise in any band")
        return ", ".join(parts[:-1]) + " and " + parts[-1] + "; when no arm qualifies: no whitening"

    def to_dict(self) -> dict:
        """JSON-ready: every field (metrics as lists) and ``text``."""
        return {**asdict(self), "gain_metrics": list(self.gain_metrics), "cost_metrics": list(self.cost_metrics),
                "text": self.text()}

    @classmethod
    def from_dict(cls, d: dict) -> Rule:
        """The rule of a :meth:`to_dict` dict (e.g. a stored recommendation's ``rule``).

        Args:
            d: field values; unknown keys (``text``) are ignored, lists become tuples.

        Returns:
            The rule.

        Raises:
            ValueError: a field's value is invalid.
        """
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


_M = {"energy_score": "energy score", "mse": "ensemble-mean MSE", "power_ratio": "power-ratio",
      "es_skill": "energy-score skill", "es_spread": "energy-score spread"}


# ------------------------------------------------------------------ the sweep table


def rows_from_result(result: dict, k: float | None = None) -> list[dict]:
    """The compact sweep table of a lookahead result: one row per whitened arm (not repeats).

    Each arm is judged against the baseline (the first arm) on the same batch orders, relative to the
    checkpoint's value (:func:`judge_paired`).

    Args:
        result: a lookahead result dict (``lookahead.json``): its ``table``, ``arms``, ``settings`` and,
            when rolled out, ``rollout``.
        k: the judgement's fixed multiple of se; None (default): Student's t quantile.

    Returns:
        One row per whitened arm: ``{"arm", "gamma", "eps_frac", "bands": {band: {metric: {n, mean, sd, se,
        threshold, same_sign, judgement[, trajectory]}}}, "spread": {band: {metric: x}}, "rollout": {...} or
        None}``.
    """
    table = result["table"]
    arms = [a for a in result["arms"] if a["repeat"] == 0][1:]
    orders = sorted({a["repeat"] for a in result["arms"]})
    base_name = result["arms"][0]["variant"]
    by = {(a["variant"], a["repeat"]): a for a in result["arms"]}
    rows = []
    for a in arms:
        w = a.get("whitening") or {}
        row = {"arm": a["name"], "gamma": w.get("exponent"), "eps_frac": w.get("eps_frac"), "bands": {},
               "spread": {}, "rollout": None}
        for m, per_band in table.items():
            for band, cell in per_band.items():
                ref = cell["checkpoint"]
                diffs = [_rel(by[(a["variant"], r)]["bands"][m][band]["overall"],
                              by[(base_name, r)]["bands"][m][band]["overall"], ref)
                         for r in orders if (a["variant"], r) in by and (base_name, r) in by]
                j = judge_paired(diffs, k)
                traj = _trajectory(a["variant"], base_name, by, orders, m, band, ref, k, result)
                if traj:
                    j["trajectory"] = traj
                row["bands"].setdefault(band, {})[m] = j
                row["spread"].setdefault(band, {})[m] = cell.get("noise")
        row["rollout"] = _rollout_row(result, a["variant"], base_name, orders, k)
        rows.append(row)
    return rows


def _rel(a, b, ref):
    if a is None or b is None or not ref or not math.isfinite(ref):
        return math.nan
    return (a - b) / abs(ref)


def _trajectory(variant, base, by, orders, m, band, ref, k, result) -> list[dict]:
    """Paired judgement at each scored step count (the intermediate scores, then the last step)."""
    first = by[(variant, 0)]
    steps = sorted(int(s) for s in first.get("intermediate") or {})
    if not steps:
        return []
    last = result["settings"]["steps"]

    def value(arm, s):
        bands = arm["bands"] if s == last else (arm.get("intermediate") or {}).get(str(s))
        return None if bands is None else bands[m][band]["overall"]

    out = []
    for s in steps + [last]:
        diffs = [_rel(value(by[(variant, r)], s), value(by[(base, r)], s), ref)
                 for r in orders if (variant, r) in by and (base, r) in by]
        out.append({"steps": s, **judge_paired(diffs, k)})
    return out


def _rollout_row(result, variant, base, orders, k) -> dict | None:
    """Rollout health of one arm against the baseline on the same batch orders.

    drift[band][metric]: the paired judgement over orders of (arm - baseline) at the last lead: for
    power_ratio of |log(power ratio)| (how far the band's power has drifted from the reference's; 0 =
    none), for the other metrics of the value relative to the checkpoint's rollout value. ``earlier_blow_up``:
    in every order the arm's first blow-up lead (non-finite values or a band's power beyond the stated
    factor) comes before the baseline's (never = after the last lead); ``non_finite``: any member
    became non-finite."""
    by = {(a["variant"], a["repeat"]): a.get("rollout") for a in result["arms"]}
    mine = by.get((variant, 0))
    if not mine:
        return None
    ckpt = ((result.get("rollout") or {}).get("checkpoint") or {}).get("drift") or {}
    pairs = [(by[(variant, r)], by[(base, r)]) for r in orders if by.get((variant, r)) and by.get((base, r))]
    metrics = [m for m in (mine.get("drift") or {}) if m not in ("lead", "reference_power")]
    drift = {}
    for m in metrics:
        for band, value in mine["drift"][m].items():
            diffs = []
            for ra, rb in pairs:
                va, vb = ra["drift"][m].get(band), rb["drift"][m].get(band)
                if va is None or vb is None:
                    continue
                if m == "power_ratio":
                    diffs.append(_log_dev(va) - _log_dev(vb))
                else:
                    diffs.append(_rel(va, vb, (ckpt.get(m) or {}).get(band) or vb))
            base0 = ((by.get((base, 0)) or {}).get("drift") or {}).get(m, {}).get(band)
            drift.setdefault(band, {})[m] = {"value": value, "baseline": base0, **judge_paired(diffs, k)}
    never = math.inf
    first = [((ra.get("first_blow_up_lead") or never), (rb.get("first_blow_up_lead") or never)) for ra, rb in pairs]
    non_finite = any("non-finite values" in why for ra, _ in pairs for why in _flat(ra.get("blow_up_reasons")))
    return {"lead": mine["drift"].get("lead"), "first_blow_up_lead": mine.get("first_blow_up_lead"),
            "baseline_first_blow_up_lead": (by.get((base, 0)) or {}).get("first_blow_up_lead"),
            "earlier_blow_up": bool(first) and all(fa < fb for fa, fb in first), "non_finite": non_finite,
            "drift": drift}


def _flat(reasons):
    return [w for lead in (reasons or []) for w in (lead or [])]


def _log_dev(x) -> float:
    """|log(power ratio)|: how far a rollout's power has drifted from the reference's (0 = none)."""
    return abs(math.log(x)) if x is not None and x > 0 and math.isfinite(x) else math.inf


def still_growing(j: dict | None) -> bool | None:
    """Whether a paired effect was still growing at the last scored step of the trajectory.

    Growing: beyond noise at the last step, and its size exceeds the previous scored step's by more than
    the judgement's threshold x se (the larger of the two steps' se), or the sign changed between them.

    Args:
        j: one judged effect (:func:`rows_from_result`'s ``bands[band][metric]``), with its ``trajectory``
            (each step judged with the sweep's own threshold).

    Returns:
        True or False; None where there is no trajectory of at least two steps to tell.
    """
    traj = (j or {}).get("trajectory") or []
    if len(traj) < 2 or traj[-1].get("se") is None or traj[-2].get("mean") is None:
        return None
    last, prev = traj[-1], traj[-2]
    if last["judgement"] != BEYOND:
        return False
    se = max(last["se"] or 0.0, prev.get("se") or 0.0)
    return abs(last["mean"]) - abs(prev["mean"]) > (last.get("threshold") or 2.0) * se or last["mean"] * prev["mean"] < 0


def growing_costs(row: dict, rule: Rule) -> list[str]:
    """The cost metrics of an arm whose ``rule.cost_band`` change was still growing at the last step.

    Args:
        row: one arm of the sweep table (:func:`rows_from_result`).
        rule: gives the cost band and metrics.

    Returns:
        Their names (``energy_score``, ``mse``), in the rule's order; empty when none grows or no
        trajectory was scored.
    """
    cost = row["bands"].get(rule.cost_band) or {}
    return [m for m in rule.cost_metrics if still_growing(cost.get(m))]


# ------------------------------------------------------------------ the decision


def recommend(rows: list[dict], rule: Rule = Rule(), *, n_train: int | None = None) -> dict:
    """The recommended arm of a sweep table (:func:`rows_from_result`) under ``rule``.

    An arm qualifies when (1) in ``gain_band`` every ``gain_metrics`` change is negative and beyond
    paired noise; (2) in ``cost_band`` every ``cost_metrics`` change (paired mean) is at most
    ``max_cost`` (a fraction, or that band's run-to-run spread of one arm); (3) with
    ``check_rollout``, its rollouts never blew up and, in no band, its rollout drift at the last lead
    is worse than the baseline's beyond paired noise (no rollout measured: not checked, said so).
    The choice is the qualifying arm with the largest gamma (ties: the larger mean gain in the first
    gain metric); no qualifying arm: "no whitening".

    Args:
        rows: the sweep table, from :func:`rows_from_result`.
        rule: the rule (default ``Rule()``).
        n_train: training pairs in the sweep's pool, for the longer run a caution suggests (None: not known).

    Returns:
        ``{"rule", "chosen", "choice", "gamma", "eps_frac", "qualifying", "reasons": {arm: [..]},
        "rollout_checked", "caution", "summary"}``: ``chosen`` is the arm's name or None, ``choice`` the arm's
        name or "no whitening", ``reasons`` says per arm why it was (not) chosen, ``caution`` (or None) that
        the chosen arm's cost was still growing at the last step (:func:`growing_costs`).
    """
    reasons, qualifying = {}, []
    for row in rows:
        why = _rejections(row, rule)
        reasons[row["arm"]] = why
        if not why:
            qualifying.append(row)
    chosen = None
    if qualifying:
        chosen = max(qualifying, key=lambda r: (r["gamma"] or 0.0,
                                                -(r["bands"][rule.gain_band][rule.gain_metrics[0]]["mean"] or 0.0)))
        for r in qualifying:
            if r is not chosen:
                reasons[r["arm"]] = [f"qualifies, but {_short(chosen['arm'])} has the larger gamma"
                                     if (r["gamma"] or 0) < (chosen["gamma"] or 0) else
                                     f"qualifies, but {_short(chosen['arm'])} has the larger "
                                     f"{rule.gain_band}-band gain at the same gamma"]
        reasons[chosen["arm"]] = ["chosen: " + _qualified_because(chosen, rule)]
    caution = _growing_cost_caution(chosen, rule, n_train) if chosen else None
    if caution:
        reasons[chosen["arm"]].append(caution)
    out = {"rule": rule.to_dict(), "chosen": chosen["arm"] if chosen else None,
           "choice": chosen["arm"] if chosen else "no whitening",
           "gamma": chosen["gamma"] if chosen else None, "eps_frac": chosen["eps_frac"] if chosen else None,
           "qualifying": [r["arm"] for r in qualifying], "reasons": reasons,
           "rollout_checked": rule.check_rollout and any(r.get("rollout") for r in rows),
           "caution": caution}
    out["summary"] = summary_line(out, rows, rule)
    return out


def add_recommendation(result: dict, rule: Rule | None = None) -> dict:
    """(Re)compute the ``sweep`` rows and the ``recommendation`` block of a lookahead result, in place.

    Args:
        result: a lookahead result dict; its ``sweep`` and ``recommendation`` keys are replaced.
        rule: the rule; None (default): ``Rule(k=result["settings"]["k"])`` (k None when not set).

    Returns:
        ``result`` itself.
    """
    rule = rule or Rule(k=(result.get("settings") or {}).get("k"))
    rows = rows_from_result(result, rule.k)
    result["sweep"] = rows
    pairs = ((result.get("data") or {}).get("train") or {}).get("pairs")
    result["recommendation"] = recommend(rows, rule, n_train=pairs if isinstance(pairs, int) else None)
    return result


def _cost_limit(row, rule, m):
    if rule.max_cost == "spread":
        return (row.get("spread") or {}).get(rule.cost_band, {}).get(m)
    return float(rule.max_cost)


def _rejections(row: dict, rule: Rule) -> list[str]:
    why = []
    gain = row["bands"].get(rule.gain_band) or {}
    for m in rule.gain_metrics:
        j = gain.get(m)
        if j is None or j["mean"] is None:
            why.append(f"no {rule.gain_band}-band {_M[m]} measured")
        elif j["judgement"] == UNJUDGED:
            why.append(f"{rule.gain_band}-band {_M[m]} {_pct(j['mean'])} is unjudged (fewer than 2 batch orders)")
        elif j["mean"] >= 0:
            why.append(f"no {rule.gain_band}-band {_M[m]} gain ({_pct(j['mean'])})")
        elif j["judgement"] != BEYOND:
            why.append(f"{rule.gain_band}-band {_M[m]} gain {_pct(j['mean'])} is within paired noise "
                       f"(se {_pct(j['se'], sign=False)}{'' if j['same_sign'] else ', signs differ over orders'})")
    cost = row["bands"].get(rule.cost_band) or {}
    for m in rule.cost_metrics:
        j = cost.get(m)
        limit = _cost_limit(row, rule, m)
        if j is None or j["mean"] is None:
            why.append(f"no {rule.cost_band}-band {_M[m]} measured")
        elif limit is None or not math.isfinite(limit):
            why.append(f"{rule.cost_band}-band {_M[m]} cost cannot be checked: no run-to-run spread "
                       "(--repeats 0); give --max-cost")
        elif j["mean"] > limit:
            what = "the run-to-run spread" if rule.max_cost == "spread" else "--max-cost"
            why.append(f"{rule.cost_band}-band {_M[m]} cost {_pct(j['mean'])} exceeds {what} {_pct(limit, sign=False)}")
    if rule.check_rollout and row.get("rollout"):
        ro = row["rollout"]
        if ro.get("non_finite"):
            why.append("rollout became non-finite")
        elif ro.get("earlier_blow_up"):
            why.append(f"rollout blows up earlier than the baseline's (lead {ro.get('first_blow_up_lead')} vs "
                       f"{ro.get('baseline_first_blow_up_lead') or 'never'})")
        for band, per_metric in (ro.get("drift") or {}).items():
            j = per_metric.get(rule.rollout_metric)
            if j and j["judgement"] == BEYOND and j["mean"] > 0:
                why.append(f"rollout {band}-band {_M.get(rule.rollout_metric, rule.rollout_metric)} drift at lead "
                           f"{ro.get('lead')} worse than the baseline's beyond paired noise ({j['mean']:+.3g} ± "
                           f"{j['se']:.2g})")
    return why


def _qualified_because(row, rule) -> str:
    g = row["bands"][rule.gain_band]
    c = row["bands"][rule.cost_band]
    gains = ", ".join(f"{_M[m]} {_pct(g[m]['mean'])} ± {_pct(g[m]['se'], sign=False)}" for m in rule.gain_metrics)
    costs = ", ".join(f"{_M[m]} {_pct(c[m]['mean'])} (limit {_pct(_cost_limit(row, rule, m), sign=False)})"
                      for m in rule.cost_metrics)
    ro = "" if not rule.check_rollout else ("; rollout not worse than the baseline's" if row.get("rollout")
                                            else "; rollout not measured")
    return f"{rule.gain_band}-band gain {gains}; {rule.cost_band}-band cost {costs}{ro}"


def summary_line(rec: dict, rows: list[dict], rule: Rule) -> str:
    """The recommendation in one line (its ``summary``): the chosen arm and why, or why none qualifies.

    Args:
        rec: the recommendation block being built (``chosen``, ``reasons``, ``rollout_checked``).
        rows: the sweep table it was made from.
        rule: the rule it was made under.

    Returns:
        The line, starting ``"recommendation: "``.
    """
    if rec["chosen"] is None:
        if not rows:
            return "recommendation: none (the sweep has no whitened arm)"
        return ("recommendation: no whitening -- no arm meets the rule (" +
                "; ".join(f"{_short(r['arm'])}: {rec['reasons'][r['arm']][0]}" for r in rows) + ")")
    row = next(r for r in rows if r["arm"] == rec["chosen"])
    return (f"recommendation: train with {_short(rec['chosen'])} -- {_qualified_because(row, rule)}"
            + ("" if rule.check_rollout and rec["rollout_checked"] else
               "; rollout health not checked" if rule.check_rollout else "")
            + (f"; {rec['caution']}" if rec.get("caution") else ""))


def _growing_cost_caution(row: dict, rule: Rule, n_train: int | None = None) -> str | None:
    """The chosen arm's cost was measured while still growing: say so, with the trajectory, and what to run.

    Why: on the bundled model gamma 0.5's low-band MSE cost was -0.36% at 20 steps, +0.47% at 40 (under
    the 0.5% limit) and +1.37% at 150 steps (docs/lookahead.md): the last-step cost alone undersells it.
    No extrapolation is offered: a linear one from the 20- and 40-step costs predicted 5.0% at 150.
    The longer run suggested keeps the passes over the training pairs (4x the steps on 4x the pool), so
    each pair is seen as often as in the sweep (8 times at the defaults; the long sweep: 150 steps on 60
    pairs, 10 times)."""
    growing = growing_costs(row, rule)
    if not growing:
        return None
    cost = row["bands"][rule.cost_band]
    parts = []
    for m in growing:
        prev, last = cost[m]["trajectory"][-2], cost[m]["trajectory"][-1]
        parts.append(f"{_M[m]} {_pct(prev['mean'])} at {prev['steps']} steps, {_pct(last['mean'])} at {last['steps']}")
    steps = cost[growing[0]]["trajectory"][-1]["steps"]
    longer = f"--steps {4 * steps}" + (f" --n-train {4 * n_train}" if n_train else "")
    return (f"caution: its {rule.cost_band}-band cost was still growing at the last step ({'; '.join(parts)}); "
            f"a longer lookahead ({longer}) shows where it settles before a long run relies on it")


def _pct(x, sign: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:+.2f}%" if sign else f"{100 * x:.2f}%"


def _short(name: str) -> str:
    return name.replace("per_sample(", "whiten(").replace(",eps_frac=", ",eps=")
