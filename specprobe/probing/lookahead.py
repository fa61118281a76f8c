"""``specprobe lookahead``: a short A/B fine-tune from a checkpoint, one arm per loss variant.

Every arm (the baseline, then each whitening setting) starts from the checkpoint's weights and the
same optimizer state (the checkpoint's own when it stores one, else fresh), takes ``steps`` optimizer
steps of the run's training loss (``crps_weight`` CRPS + ``energy_score_weight`` energy score, the
arm's whitening on the energy score) and is scored on held-out pairs the training batches never
contain. A *batch order* (one repeat r) fixes the training batches, their order and the noise seeds;
with ``paired`` (the default) every arm trains on every order, so the arm - baseline difference on
the same order is a paired difference, judged against its own noise over the orders
(:func:`specprobe.probing.recommend.judge_paired`). The baseline reruns alone give the run-to-run
spread of one arm, reported beside it. Arms are independent (each seeded from its repeat alone), so
they can be spread over worker processes (``workers``) or torchrun ranks with identical results.

Scores (unwhitened, loss space, per channel and per degree l, from ``spectral/``): the energy score
split into skill E|X - y| and spread 0.5 E|X - X'| (fme's per-mode weights and 2 sqrt(LM) scaling,
so the sum over l is the energy-score loss), the ensemble-mean squared error (physical degree power
of mean(X) - y), and the power of the members over the power of the target. With rollout settings,
each arm and the untouched checkpoint are also rolled out autoregressively
(:mod:`specprobe.probing.rollout_health`).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, SpecprobeError
from ..spectral import (
    POWER_CONVENTIONS,
    WhiteningConfig,
    band_sums,
    degree_scores,
    ensemble_loss,
    parse_bands,
    to_spectral,
)
from ..spectral.whitening import parse_variants
from .recommend import JUDGEMENT_RULE, Rule, add_recommendation, threshold_text

if TYPE_CHECKING:
    from ..models.options import LoadOptions

SCHEMA = "specprobe.lookahead/1"
METRICS = ("energy_score", "es_skill", "es_spread", "mse", "power_ratio")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_POLICIES = ("auto", "peak", "final")
AUTO_LR_FRACTION = 1 / 3  # --lr auto: this fraction of the run's configured (peak) lr; docs/lookahead.md
EVAL_SEED = 7_000_001  # evaluation noise: the same in every arm and before training
DEFAULT_GAMMAS = (0.0, 0.2, 0.5, 0.8, 1.0)  # the default sweep (gamma 0 = the baseline arm)


@dataclass(frozen=True)
class LookaheadSettings:
    """How each arm of the lookahead sweep fine-tunes and is judged; validated on construction.

    Args:
        steps: optimizer steps per arm (>= 0; 0 scores the checkpoint itself).
        batch_size: training pairs per step.
        n_ensemble: members per pair; None: what the run trained with, else 2.
        eval_batch_size: evaluation pairs per forward.
        repeats: extra batch orders (1 + repeats in all); paired differences need >= 1.
        paired: every arm trains on every order (each arm - baseline difference judged against its own
            paired noise); False: the repeats rerun the baseline only, and differences are unjudged.
        seed: seeds the batch orders, the model's noise and the data pools.
        crps_weight, energy_score_weight: the trained loss; None: what the run trained with.
        optimizer: ``adam``, ``adamw`` or ``sgd``; None: the run's.
        lr: a positive learning rate; wins over ``lr_from``.
        lr_from: ``auto`` (a third of the configured peak lr), ``peak`` or ``final`` (where the run ended).
        bands: degree bands, e.g. ``"low=1:8,high=56:63"``; None: the lowest and highest eighth.
        eval_steps: trajectory step counts scored besides the last (1..steps); None: N/4 and N/2.
        k: the noise rule: None (default) calls a difference beyond noise when |mean| > t(0.975, n-1) se with
            one sign in every order; a number uses k se instead.

    Raises:
        ValueError: a field out of range.
    """

    # Defaults measured on the bundled model (docs/lookahead.md, "Choosing the defaults"): at a third
    # of the run's peak lr, 40 steps of 4 pairs over 3 batch orders resolve the low-band cost of
    # gamma >= 0.5 (energy score and MSE) beyond its paired noise, and the high-band gains.
    steps: int = 40
    batch_size: int = 4
    n_ensemble: int | None = None  # None: what the run trained with, else 2
    eval_batch_size: int = 8
    repeats: int = 2  # extra batch orders: 1 + repeats orders in all
    paired: bool = True  # repeats rerun every arm (paired differences); False: the baseline only
    seed: int = 0
    crps_weight: float | None = None  # None: what the run trained with
    energy_score_weight: float | None = None
    optimizer: str | None = None  # adam | adamw | sgd; None: the run's
    lr: float | None = None  # a number wins over lr_from
    lr_from: str = "auto"  # auto: AUTO_LR_FRACTION x the configured lr | peak: configured | final: where it ended
    bands: str | None = None
    eval_steps: tuple | None = None  # trajectory: also score after these steps; None: N/4 and N/2
    k: float | None = None  # paired noise: beyond when |mean| > t(0.975, n-1) se (or k se) with one sign

    def __post_init__(self):
        for name, lo in (("steps", 0), ("batch_size", 1), ("eval_batch_size", 1), ("repeats", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        if self.n_ensemble is not None and (not isinstance(self.n_ensemble, int) or self.n_ensemble < 1):
            raise ValueError(f"n_ensemble: expected an integer >= 1, got {self.n_ensemble!r}")
        if self.optimizer is not None and self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if self.lr_from not in LR_POLICIES:
            raise ValueError(f"lr: expected a positive number or one of {', '.join(LR_POLICIES)}, got {self.lr_from!r}")
        for name in ("crps_weight", "energy_score_weight"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")
        if self.eval_steps is not None:
            steps = tuple(self.eval_steps)
            if any(isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= self.steps for k in steps):
                raise ValueError(f"eval_steps: expected step counts in 1..{self.steps}, got {list(steps)!r}")
            object.__setattr__(self, "eval_steps", tuple(sorted(set(steps))))
        if self.k is not None and not (self.k > 0 and math.isfinite(self.k)):
            raise ValueError(f"k: expected a number > 0 or None, got {self.k!r}")

    @property
    def orders(self) -> int:
        """Batch orders per arm: 1 + :attr:`repeats`."""
        return self.repeats + 1

    def trajectory_steps(self) -> tuple:
        """Step counts scored before the last: ``eval_steps``, else N/4 and N/2 (rounded, distinct, < N)."""
        if self.eval_steps is not None:
            return tuple(k for k in self.eval_steps if k != self.steps)
        return tuple(sorted({k for k in (round(self.steps / 4), round(self.steps / 2)) if 0 < k < self.steps}))


def sweep_variants(gammas: Sequence[float] | None = None, eps_fracs: Sequence[float] | None = None,
                   whitening: Sequence = ()) -> list[WhiteningConfig]:
    """The whitened arms of ``--gamma G1,G2 --eps-frac E1,E2 --whitening ...``.

    Args:
        gammas: whitening exponents in [0, 1]; 0 is the baseline arm, which is always there.
        eps_fracs: amplitude floors > 0; every gamma > 0 is paired with every eps_frac. One list alone
            takes fme's default for the other.
        whitening: further settings (strings, fme dicts or configs), each added once.

    Returns:
        The arms besides the baseline, each setting once, in the order given.
    """
    from ..spectral.whitening import DEFAULT_EPS_FRAC, DEFAULT_GAMMA

    grid = []
    if gammas is not None or eps_fracs is not None:
        gs = list(gammas) if gammas is not None else [DEFAULT_GAMMA]
        es = list(eps_fracs) if eps_fracs is not None else [DEFAULT_EPS_FRAC]
        for g in gs:
            if not (isinstance(g, (int, float)) and 0.0 <= g <= 1.0):
                raise ValueError(f"--gamma: expected numbers in [0, 1] (0 = the baseline arm), got {g!r}")
        for g in gs:
            if g == 0:
                continue
            for e in es:
                grid.append(WhiteningConfig("per_sample", exponent=float(g), eps_frac=float(e)))
    return parse_variants(list(grid) + list(whitening))[1:] if (grid or whitening) else []


# ------------------------------------------------------------------ recipe: loss and optimizer


def resolve_loss(recipe_loss: dict | None, s: LookaheadSettings) -> dict:
    trained = recipe_loss or {}
    cw = s.crps_weight if s.crps_weight is not None else trained.get("crps_weight", 0.0)
    ew = s.energy_score_weight if s.energy_score_weight is not None else trained.get("energy_score_weight", 1.0)
    if ew <= 0:
        raise SpecprobeError("the training loss has energy_score_weight 0, so whitening changes nothing; "
                             "give --energy-score-weight (and --crps-weight) to choose the loss")
    n_ens = s.n_ensemble or trained.get("n_ensemble") or 2
    given = s.crps_weight is not None or s.energy_score_weight is not None
    return {"crps_weight": float(cw), "energy_score_weight": float(ew),
            "almost_fair_crps_alpha": float(trained.get("almost_fair_crps_alpha", 1.0)), "n_ensemble": int(n_ens),
            "source": "options" if given else trained.get("source", "defaults (no training loss recorded)"),
            "energy_score": "fair, beta=1, fme 2026.10.0 weighting; the arm's whitening on it; CRPS never whitened"}


def optimizer_factory(params, recipe_opt: dict, s: LookaheadSettings):
    """(make(): a fresh optimizer over ``params`` in the same state every call, provenance dict)."""
    import torch

    rec = recipe_opt or {}
    run_type = (rec.get("type") or "").lower() or None
    run_type = {"fusedadam": "adamw"}.get(run_type, run_type)  # fme builds FusedAdam as AdamW(fused=True)
    kind = (s.optimizer or run_type or "adam").lower()
    if kind not in OPTIMIZERS:
        raise SpecprobeError(f"the run's optimizer {rec.get('type')!r} is not one lookahead can rebuild; "
                             f"choose --optimizer {'|'.join(OPTIMIZERS)}")
    lr = s.lr if s.lr is not None else rec.get("lr")
    if lr is None:
        raise SpecprobeError("the checkpoint records no learning rate; give --lr")
    if not lr > 0:
        raise SpecprobeError(f"learning rate {lr:g} (the run's {rec.get('source') or 'recorded lr'}): a lookahead at "
                             "lr 0 changes nothing; give --lr NUMBER or --lr auto")
    same_family = run_type is not None and (kind == run_type or {kind, run_type} <= {"adam", "adamw"})
    hyper = dict(rec.get("hyper") or {}) if same_family else {}
    state = rec.get("state") if same_family else None
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[kind]
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in hyper.items()
              if k in ("betas", "eps", "weight_decay", "amsgrad") and kind != "sgd"}
    params = list(params)

    def make():
        opt = cls(params, lr=float(lr), **kwargs)
        if state is not None:
            # deepcopy: load_state_dict keeps the given tensors, and each arm's steps update them in place
            opt.load_state_dict(copy.deepcopy(state))
            for group in opt.param_groups:  # our hyper-parameters win (fme's fine-tuning rule)
                group["lr"] = float(lr)
                group.update({k: v for k, v in kwargs.items()})
        return opt

    try:
        make()
    except ValueError as e:
        raise SpecprobeError(f"the checkpoint's optimizer state does not fit the model's parameters: {e}") from None
    clip = rec.get("max_grad_norm")
    make.max_grad_norm = float(clip) if clip is not None else None
    prov = {"type": cls.__name__, "lr": float(lr), "hyper_parameters": kwargs, "max_grad_norm": make.max_grad_norm,
            "state": "checkpoint optimizer state (moments and step count)" if state is not None else "fresh (no moments)",
            "type_source": "--optimizer" if s.optimizer else rec.get("source", "default (Adam)"),
            "lr_source": "--lr" if s.lr is not None else rec.get("source", ""),
            "run_optimizer": rec.get("type")}
    if rec.get("state") is not None and state is None:
        prov["state"] = f"fresh: the checkpoint's state is {rec.get('type')}'s, not usable by {cls.__name__}"
    return make, prov


def configured_lr(target) -> tuple[float | None, str]:
    """The run's configured (peak) learning rate and where it is recorded; (None, why) when it is not.

    torch-harmonics: the checkpoint's training metadata (``optimizer.lr``, the peak of its schedule).
    fme: ``optimization.lr`` of the run's ``config.yaml`` (fme writes it beside
    ``training_checkpoints/``; fme's default 1e-3 when the section sets none). Not the lr the
    scheduler had reached, which a finished cosine schedule leaves at 0."""
    if getattr(target, "family", None) == "fme":
        from ..models.fme.describe import training_optimizer_config

        cfg, where = training_optimizer_config(target._obj, target.path)
        if cfg is None:
            return None, where
        if cfg.get("lr") is None:
            return 1e-3, f"{where} (no optimization.lr: fme's default 1e-3)"
        return float(cfg["lr"]), f"{where} optimization.lr"
    opt = ((getattr(getattr(target, "spec", None), "training", None) or {}).get("optimizer") or {})
    if opt.get("lr") is not None:
        return float(opt["lr"]), "checkpoint training metadata (optimizer.lr, the peak of its schedule)"
    return None, "the checkpoint records no configured learning rate"


def resolve_lr(target, recipe_opt: dict | None, s: LookaheadSettings) -> tuple[float, str]:
    """(learning rate, why): ``--lr NUMBER``; ``auto`` (default): AUTO_LR_FRACTION x the configured
    lr; ``peak``: the configured lr; ``final``: the lr the run ended at. Never 0: a missing or zero
    rate is replaced by the other recorded one with the reason stated, or refused naming --lr."""
    if s.lr is not None:
        return float(s.lr), "--lr"
    rec = recipe_opt or {}
    final, final_src = rec.get("lr"), rec.get("source") or "the checkpoint"
    peak, where = configured_lr(target)
    if s.lr_from in ("auto", "peak"):
        if peak is not None and peak > 0:
            if s.lr_from == "peak":
                return peak, f"--lr peak: the run's configured lr, from {where}"
            return peak * AUTO_LR_FRACTION, (f"--lr auto: a third of the run's configured (peak) lr {peak:g}, from "
                                             f"{where}")
        if final is not None and final > 0:
            return float(final), (f"the run's configured lr is not recorded ({where}); the lr it ended at instead, "
                                  f"{final:g} ({final_src})")
        raise SpecprobeError(f"no usable learning rate: the configured lr is not recorded ({where}) and the lr the run "
                             f"ended at is {final!r}; give --lr NUMBER")
    if final is None:
        raise SpecprobeError("the checkpoint records no final learning rate; give --lr NUMBER or --lr auto")
    if not final > 0:
        hint = f" or --lr auto (a third of the configured {peak:g})" if peak else ""
        raise SpecprobeError(f"--lr final: the run ended at lr {final:g} (the end of its schedule), where a lookahead "
                             f"changes nothing; give --lr NUMBER{hint}")
    return float(final), f"--lr final: the lr the run ended at ({final_src})"


# ------------------------------------------------------------------ batches and data


def batch_schedule(pool_size: int, steps: int, batch_size: int, order_seed: int) -> list[list[int]]:
    """Pair indices of each step: seeded shuffles of the pool, epoch after epoch."""
    if batch_size > pool_size:
        raise DataError(f"--batch-size {batch_size}: the training pool holds only {pool_size} pairs")
    rng = np.random.default_rng(order_seed)
    order, out = [], []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.permutation(pool_size).tolist()
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def check_disjoint(train_pool, eval_pool) -> int:
    """Raise if any state of a training pair is a state of an evaluation pair; return states checked."""
    train_states = {k for pair in train_pool.state_keys for k in pair}
    for i, pair in enumerate(eval_pool.state_keys):
        if train_states & set(pair):
            raise DataError(f"evaluation pair {i} shares a state with the training pairs: training data must not "
                            "overlap the evaluation data (use other --train-data, or another time split)")
    return len(train_states)


# ------------------------------------------------------------------ scoring


def evaluate(target, pool, *, n_ensemble: int, batch_size: int) -> dict:
    """Per channel and degree (C, L) means over the pool's pairs, float64 numpy arrays."""
    import torch

    sums, n = {}, 0
    with torch.no_grad():
        for start in range(0, pool.size, batch_size):
            batch = pool.take(list(range(start, min(start + batch_size, pool.size))))
            gen, tgt = target.forward(batch, n_ensemble=n_ensemble, seed=EVAL_SEED + start)
            parts = degree_scores(to_spectral(gen, grid=target.loss_grid), to_spectral(tgt, grid=target.loss_grid))
            for k, v in parts.items():
                v = v.double().sum(dim=0).cpu().numpy()
                sums[k] = v if k not in sums else sums[k] + v
            n += gen.shape[0]
    out = {k: v / n for k, v in sums.items()}
    out["energy_score"] = out["es_skill"] - out["es_spread"]
    return out


def band_values(scores: dict, bands) -> dict:
    """{metric: {band or 'total': {'overall': x, channel index: x}}} from (C, L) arrays."""
    sums = {k: band_sums(scores[k], bands) for k in (*METRICS[:4], "pred_power", "target_power")}
    out = {m: {} for m in METRICS}
    for name in sums["mse"]:
        for m in METRICS[:4]:
            per_c = sums[m][name]
            out[m][name] = {"overall": float(per_c.mean()), "channels": per_c.tolist()}
        p, t = sums["pred_power"][name], sums["target_power"][name]
        out["power_ratio"][name] = {"overall": float(p.sum() / t.sum()) if t.sum() > 0 else math.nan,
                                    "channels": (p / np.where(t > 0, t, np.nan)).tolist()}
    return out


def per_degree(scores: dict, channels) -> dict:
    out = {"overall": {}, "channels": {}}
    for m in METRICS[:4]:
        out["overall"][m] = scores[m].mean(0).tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["overall"]["power_ratio"] = (scores["pred_power"].sum(0) / scores["target_power"].sum(0)).tolist()
        for i, ch in enumerate(channels):
            out["channels"][ch] = {m: scores[m][i].tolist() for m in METRICS[:4]}
            out["channels"][ch]["power_ratio"] = (scores["pred_power"][i] / scores["target_power"][i]).tolist()
    return out


# ------------------------------------------------------------------ training


def train_arm(target, make_optimizer, whitening, schedule, train_pool, loss: dict, noise_seed0: int,
              after_step=None) -> list[float]:
    """``len(schedule)`` optimizer steps of the training loss with ``whitening`` on the energy score.

    ``after_step(k)`` is called after step k (1-based), e.g. to score intermediate states."""
    opt = make_optimizer()
    losses = []
    for k, idx in enumerate(schedule):
        batch = train_pool.take(idx)
        gen, tgt = target.forward(batch, n_ensemble=loss["n_ensemble"], seed=noise_seed0 + k)
        value = ensemble_loss(gen, tgt, crps_weight=loss["crps_weight"], energy_score_weight=loss["energy_score_weight"],
                              whitening=whitening, alpha=loss["almost_fair_crps_alpha"], grid=target.loss_grid)
        if not bool(value.isfinite()):
            raise SpecprobeError(f"the training loss became {float(value)} at step {k}; lower --lr")
        opt.zero_grad(set_to_none=True)
        value.backward()
        clip = getattr(make_optimizer, "max_grad_norm", None)
        if clip is not None:  # the run clipped its global gradient norm (fme max_grad_norm)
            import torch

            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
        opt.step()
        losses.append(float(value.detach()))
        if after_step is not None:
            after_step(k + 1)
    opt.zero_grad(set_to_none=True)
    return losses


def arm_runs(configs, s: LookaheadSettings) -> list[tuple]:
    """(config, repeat) of every arm, in result order: each arm on order 0, then the repeats (every arm
    when paired, else the baseline only)."""
    rerun = configs if s.paired else configs[:1]
    return [(cfg, 0) for cfg in configs] + [(cfg, r) for r in range(1, s.repeats + 1) for cfg in rerun]


def order_seed(s: LookaheadSettings, repeat: int) -> int:
    return s.seed * 1_000_003 + repeat


@dataclass(frozen=True)
class _Band:
    name: str
    lo: int
    hi: int


class ArmRunner:
    """Trains and scores one arm at a time from the checkpoint's weights; built alike in every process.

    Everything an arm depends on is fixed here (weights, optimizer state, loss, bands) or derived from
    its repeat alone (batches, order and noise seeds), so arm i is the same whichever process runs it."""

    def __init__(self, target, train_pool, eval_pool, configs, settings: LookaheadSettings, loss: dict,
                 recipe_opt: dict, bands, rollout=None):
        self.target, self.train_pool, self.eval_pool = target, train_pool, eval_pool
        self.s, self.loss, self.bands = settings, loss, list(bands)
        self.runs = arm_runs(configs, settings)
        self.module = target.trainable_module()
        params = list(self.module.parameters())  # all of them, as fme's optimizer holds them (frozen: no grad)
        self.make_opt, self.opt_prov = optimizer_factory(params, recipe_opt, settings)
        self.initial = copy.deepcopy(self.module.state_dict())
        self.rollout = rollout  # {"settings": RolloutSettings, "set": RolloutSet} or None

    def evaluate(self) -> dict:
        return evaluate(self.target, self.eval_pool, n_ensemble=self.loss["n_ensemble"],
                        batch_size=self.s.eval_batch_size)

    def roll_out(self) -> dict | None:
        if self.rollout is None:
            return None
        from .rollout_health import rollout_health

        return rollout_health(self.target, self.rollout["set"], settings=self.rollout["settings"], bands=self.bands)

    def run(self, i: int) -> dict:
        s = self.s
        cfg, r = self.runs[i]
        seed = order_seed(s, r)
        schedule = batch_schedule(self.train_pool.size, s.steps, s.batch_size, seed)
        score_steps = set(s.trajectory_steps())
        intermediate = {}

        def score_at(k):
            if k in score_steps:
                intermediate[str(k)] = band_values(self.evaluate(), self.bands)

        t0 = time.perf_counter()
        self.module.load_state_dict(self.initial)
        try:
            losses = train_arm(self.target, self.make_opt, cfg if cfg.kind != "none" else None, schedule,
                               self.train_pool, self.loss, noise_seed0=seed * 10_007,
                               after_step=score_at if score_steps else None)
            after = self.evaluate()
            rollout = self.roll_out()
        finally:
            self.module.load_state_dict(self.initial)
        arm = {"name": cfg.name if r == 0 else f"{cfg.name}#repeat{r}", "variant": cfg.name,
               "whitening": cfg.to_dict(), "repeat": r, "order_seed": seed, "train_loss": losses, "scores": after,
               "seconds": time.perf_counter() - t0}
        if score_steps:
            arm["intermediate"] = intermediate
        if rollout is not None:
            rollout.pop("rollout_set", None)  # once, in result["rollout"]: the same set for every arm
            arm["rollout"] = rollout
        return arm


def run_lookahead(target, train_pool, eval_pool, *, variants=("per_sample",), settings: LookaheadSettings = LookaheadSettings(),
                  progress=None, eval_steps=None, shard=None, workers=None, rollout=None, rule: Rule | None = None) -> dict:
    """The A/B on a loaded target and its pools; returns the JSON-able result (without file provenance).

    ``eval_steps``: steps after which each arm is also scored (overrides ``settings.eval_steps``; band
    values in ``arm["intermediate"]``). ``shard`` (torchrun): this process trains the arms
    ``shard.takes(i)`` accepts. ``workers`` (:class:`WorkerPool`): arms trained in worker processes
    that rebuilt the same target and pools. ``rollout``: ``{"settings": RolloutSettings, "set":
    RolloutSet}`` to roll out the checkpoint and every arm. Every arm starts from the same weights
    with seeds from its repeat alone, so the gathered arms are the one-process arms."""
    s = settings
    if eval_steps is not None:
        s = replace(s, eval_steps=tuple(k for k in eval_steps if 0 < k <= s.steps))
    configs = parse_variants(variants)
    n_checked = check_disjoint(train_pool, eval_pool)
    recipe = target.training_recipe()
    loss = resolve_loss(recipe.get("loss"), s)
    lr, lr_note = resolve_lr(target, recipe.get("optimizer"), s)
    s_run = replace(s, lr=lr)
    started = time.perf_counter()
    probe = ArmRunner(target, train_pool, eval_pool, configs, s_run, loss, recipe.get("optimizer"), bands=(),
                      rollout=rollout)
    before = probe.evaluate()
    n_degrees = before["mse"].shape[-1]
    probe.bands = bands = [_Band(b.name, b.lo, b.hi) for b in parse_bands(s.bands, n_degrees)]
    opt_prov = {**probe.opt_prov, "lr_source": lr_note, "lr_policy": "--lr NUMBER" if s.lr is not None else s.lr_from}
    runs = probe.runs
    if workers is not None:
        workers.start(configs, s_run, loss, bands)
    checkpoint_rollout = probe.roll_out()
    if checkpoint_rollout is not None:
        checkpoint_rollout.pop("rollout_set", None)  # once, in result["rollout"]
    indices = [i for i in range(len(runs)) if shard is None or shard.takes(i)]
    if workers is not None:
        arms = workers.collect(indices, progress, local_run=probe.run)
    else:
        arms = []
        for n, i in enumerate(indices):
            arms.append(probe.run(i))
            if progress is not None:
                progress(n + 1, len(indices))
    if shard is not None:
        arms = shard.gather_taken(arms)
    rollout_info = None
    if rollout is not None:
        rollout_info = {"settings": asdict(rollout["settings"]), "rollout_set": dict(rollout["set"].description),
                        "checkpoint": checkpoint_rollout}
    result = summarise(target, configs, arms, before, bands, loss, opt_prov, s_run, train_pool, eval_pool,
                       n_checked, time.perf_counter() - started, rollout=rollout_info, rule=rule)
    if workers is not None:
        result["workers"] = workers.describe()
    return result


def _rel(a, b, ref):
    return (a - b) / abs(ref) if ref and math.isfinite(ref) else math.nan


def compare_bands(arms: list[dict], before_bands: dict, k: float | None = None) -> dict:
    """Each arm vs the untouched checkpoint and vs the baseline arm, relative to the checkpoint's value.

    ``noise``: the run-to-run spread of one arm, RMS over the repeat baselines of (repeat - baseline),
    in the same units. ``paired`` (per whitened arm): :func:`~specprobe.probing.recommend.judge_paired`
    of (arm - baseline) on each batch order; ``beyond_noise`` is its verdict (None: unjudged)."""
    from .recommend import BEYOND, UNJUDGED, judge_paired

    base = arms[0]["bands"]
    base_name = arms[0]["variant"]
    repeats = [a["bands"] for a in arms if a["repeat"] > 0 and a["variant"] == base_name]
    by_order = {(a["variant"], a["repeat"]): a["bands"] for a in arms}
    orders = sorted({a["repeat"] for a in arms})
    out = {}
    for m, per_band in before_bands.items():
        out[m] = {}
        for band, v0 in per_band.items():
            ref = v0["overall"]
            b = base[m][band]["overall"]
            noise = (math.sqrt(np.mean([_rel(rp[m][band]["overall"], b, ref) ** 2 for rp in repeats]))
                     if repeats else math.nan)
            row = {"checkpoint": ref, "noise": noise, "arms": {}}
            for a in arms:
                if a["repeat"]:
                    continue
                v = a["bands"][m][band]["overall"]
                cell = {"value": v, "vs_checkpoint": _rel(v, ref, ref), "vs_baseline": _rel(v, b, ref),
                        "beyond_noise": None}
                if a is not arms[0]:
                    paired = [_rel(by_order[(a["variant"], r)][m][band]["overall"],
                                   by_order[(base_name, r)][m][band]["overall"], ref)
                              for r in orders if (a["variant"], r) in by_order and (base_name, r) in by_order]
                    j = judge_paired(paired, k)
                    cell["paired"] = j
                    cell["judgement"] = j["judgement"]
                    cell["beyond_noise"] = None if j["judgement"] == UNJUDGED else j["judgement"] == BEYOND
                    if j["n"] > 1:  # the earlier files' names, kept
                        cell["paired_sd"], cell["paired_mean"] = j["sd"], j["mean"]
                row["arms"][a["name"]] = cell
            out[m][band] = row
    return out


def _stalled_warning(table: dict, lr: float) -> list[str]:
    """Never a silent no-op: the baseline arm left every score where the checkpoint had it."""
    moved = [abs(c["arms"][name]["vs_checkpoint"]) for per_band in table.values() for c in per_band.values()
             for name in list(c["arms"])[:1] if math.isfinite(c["arms"][name]["vs_checkpoint"])]
    if moved and max(moved) < 1e-7:
        return [f"the baseline arm left every band score within 1e-7 of the checkpoint's: lr {lr:g} is too small to "
                "move the scores, so no difference can show; raise --lr"]
    return []


def summarise(target, configs, arms, before, bands, loss, opt_prov, s, train_pool, eval_pool, n_checked, elapsed,
              rollout=None, rule: Rule | None = None) -> dict:
    channels = list(target.channel_names)
    before_bands = band_values(before, bands)
    for a in arms:
        a["bands"] = band_values(a["scores"], bands)
        a["per_degree"] = per_degree(a.pop("scores"), channels)
    table = compare_bands(arms, before_bands, s.k)
    result = {
        "schema": SCHEMA,
        "channels": channels,
        "degrees": list(range(before["mse"].shape[-1])),
        "bands": [{"name": b.name, "lo": b.lo, "hi": b.hi} for b in bands],
        "variants": [{"name": c.name, "whitening": c.to_dict()} for c in configs],
        "settings": {**asdict(s), "n_ensemble": loss["n_ensemble"], "orders": s.orders,
                     "trajectory_steps": list(s.trajectory_steps())},
        "loss": loss,
        "optimizer": opt_prov,
        "data": {"train": train_pool.description, "eval": eval_pool.description,
                 "disjoint": f"no state of the {train_pool.size} training pairs ({n_checked} distinct states) is in "
                             f"the {eval_pool.size} evaluation pairs (exact byte fingerprints)",
                 "train_order": "seeded shuffles of the training pool; every arm of one repeat (batch order) uses the "
                                "same batches, order and noise seeds; repeats change order and noise"
                                + ("; paired: every arm is rerun on each repeat's order" if s.paired else
                                   "; repeats rerun the baseline only")},
        "conventions": {
            "energy_score": "unwhitened fair energy score per degree: sum_m mode_w[m] * ES[l,m] / (2 sqrt(LM)), "
                            "mean over pairs; skill - spread; the sum over l is fme's energy-score loss",
            "mse": "physical degree power of (ensemble mean - target), loss (normalised) space",
            "power_ratio": "physical degree power of the members (mean over members) / of the target",
            "power_convention": POWER_CONVENTIONS["physical"],
            "forward": "the adapter's training forward (fme: modules in train mode), no gradients, fixed noise seeds",
            "bands": "band value = sum over the band's degrees (power_ratio: ratio of the band sums); overall = "
                     "mean over channels (power_ratio: ratio of channel sums)",
            "relative_change": "(value - reference) / |checkpoint value|",
            "beyond_noise": JUDGEMENT_RULE.format(threshold=threshold_text(s.k)),
            "noise": "run-to-run spread of one arm: RMS over the repeat baselines of (repeat - baseline), relative "
                     "to the checkpoint's value; how much rerunning the same training on another batch order moves a "
                     "score (not the noise of an arm - baseline difference)",
            "trajectory": "the paired judgement after each of settings.trajectory_steps and the last step",
        },
        "before": {"bands": before_bands, "per_degree": per_degree(before, channels)},
        "arms": arms,
        "table": table,
        "elapsed_s": round(elapsed, 3),
    }
    if rollout is not None:
        result["rollout"] = rollout
        result["conventions"]["rollout"] = ("each arm and the untouched checkpoint rolled out autoregressively from "
                                            "the same held-out initial states and noise (rollout_health); drift = "
                                            "the values at the last lead")
    warnings = _stalled_warning(table, opt_prov["lr"]) if s.steps > 0 else []
    if warnings:
        result["warnings"] = warnings
    add_recommendation(result, rule)
    return result


# ------------------------------------------------------------------ worker processes


def _pools_digest(train_pool, eval_pool) -> str:
    h = hashlib.sha256()
    for pool in (train_pool, eval_pool):
        for pair in pool.state_keys:
            h.update(repr(pair).encode())
        h.update(b"|")
    return h.hexdigest()


class WorkerPool:
    """Arms shared by this process and ``n - 1`` spawned workers (each rebuilds the target and pools from
    the same arguments, checked identical by the pools' state fingerprints), all pulling arm indices
    from one queue, so a slow process takes fewer arms.

    ``spec``: what a worker needs to rebuild (checkpoint, device, pool and rollout arguments)."""

    def __init__(self, n: int, threads: int, spec: dict, digest: str):
        self.n, self.threads, self.spec, self.digest = n, threads, spec, digest
        self.procs, self.tasks, self.results = [], None, None
        self.worker_cpu = []

    def start(self, configs, settings, loss, bands):
        """Spawn the n - 1 workers now: they import and load while this process scores the checkpoint."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited OpenMP or torch thread state
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        job = {**self.spec, "variants": [c.to_dict() for c in configs], "settings": asdict(settings), "loss": loss,
               "bands": [asdict(b) for b in bands], "threads": self.threads, "digest": self.digest}
        self.procs = [ctx.Process(target=_worker_main, args=(job, self.tasks, self.results), daemon=True)
                      for _ in range(self.n - 1)]
        with _main_module_hidden():
            for p in self.procs:
                p.start()

    def collect(self, indices, progress=None, local_run=None) -> list[dict]:
        """Every arm in ``indices``: this process runs ``local_run(i)`` for the indices it pulls first."""
        import queue

        for i in indices:
            self.tasks.put(i)
        for _ in self.procs:
            self.tasks.put(None)
        out = {}

        def take(msg):
            if msg[0] == "error":
                raise SpecprobeError(msg[1])
            if msg[0] == "done":
                self.worker_cpu.append(round(msg[1], 3))
                return
            out[msg[1]] = msg[2]
            if progress is not None:
                progress(len(out), len(indices))

        try:
            while local_run is not None:
                try:
                    i = self.tasks.get(timeout=1.0)
                except queue.Empty:
                    break
                if i is None:  # a worker's stop sign: put it back, every index is taken
                    self.tasks.put(None)
                    break
                out[i] = local_run(i)
                if progress is not None:
                    progress(len(out), len(indices))
                while True:  # what the workers finished meanwhile (and their failures, early)
                    try:
                        take(self.results.get_nowait())
                    except queue.Empty:
                        break
            while len(out) < len(indices):
                try:
                    msg = self.results.get(timeout=1.0)
                except queue.Empty:
                    dead = [p.exitcode for p in self.procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise SpecprobeError(f"a lookahead worker process ended with exit code {dead[0]} "
                                             "(out of memory?); rerun with --workers 1") from None
                    continue
                take(msg)
            deadline = time.perf_counter() + 10  # the workers' CPU reports, sent just after their last arm
            while len(self.worker_cpu) < len(self.procs) and time.perf_counter() < deadline:
                try:
                    take(self.results.get(timeout=0.5))
                except queue.Empty:
                    if all(p.exitcode is not None for p in self.procs):
                        break
        finally:
            self.close()
        return [out[i] for i in indices]

    def close(self):
        for p in self.procs:
            if p.pid is None:  # never started
                continue
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)

    def describe(self) -> dict:
        return {"processes": self.n, "threads_per_process": self.threads, "worker_cpu_s": self.worker_cpu,
                "split": "this process and n - 1 spawned workers pull arm indices from one queue; each arm seeded "
                         "from its repeat alone, so the arms equal a one-process run with the same threads per process"}


class _main_module_hidden:
    """Spawned workers need only specprobe: hide the caller's ``__main__`` from multiprocessing's
    preparation so that a script without an ``if __name__ == "__main__"`` guard is not re-run in
    every worker (the worker function and everything it unpickles live in specprobe)."""

    def __enter__(self):
        import sys

        self.main = sys.modules.get("__main__")
        self.saved = {k: self.main.__dict__[k] for k in ("__file__", "__spec__") if k in self.main.__dict__}
        self.main.__dict__.pop("__file__", None)
        self.main.__dict__["__spec__"] = None
        return self

    def __exit__(self, *exc):
        self.main.__dict__.pop("__spec__", None)
        self.main.__dict__.update(self.saved)
        return False


def _worker_main(job: dict, tasks, results):
    """One worker process: rebuild the target and pools, then train the arms it pulls from ``tasks``."""
    try:
        import torch

        from ..models.registry import load_target

        torch.set_num_threads(job["threads"])
        torch.manual_seed(job["settings"]["seed"])
        target = load_target(job["checkpoint"], job["options"], device=torch.device(job["device"]))
        train_pool, eval_pool = target.lookahead_pools(job["data"], job["train_data"], **job["pool_kwargs"])
        if _pools_digest(train_pool, eval_pool) != job["digest"]:
            raise SpecprobeError("a worker process read other training/evaluation pairs than the main process "
                                 "(data changed while running?); rerun with --workers 1")
        rollout = None
        if job.get("rollout") is not None:
            from .rollout_health import RolloutSettings, build_rollout_set

            rs = RolloutSettings(**job["rollout"]["settings"])
            rollout = {"settings": rs, "set": build_rollout_set(target, job["rollout"]["data"], settings=rs,
                                                                cache_dir=job["pool_kwargs"].get("cache_dir"),
                                                                avoid=(train_pool,))}
        st = job["settings"]
        settings = LookaheadSettings(**{**st, "eval_steps": tuple(st["eval_steps"]) if st["eval_steps"] else None})
        runner = ArmRunner(target, train_pool, eval_pool, [WhiteningConfig(**v) for v in job["variants"]], settings,
                           job["loss"], target.training_recipe().get("optimizer"),
                           bands=[_Band(**b) for b in job["bands"]], rollout=rollout)
        while True:
            i = tasks.get()
            if i is None:
                break
            results.put(("arm", i, runner.run(i)))
        results.put(("done", time.process_time()))  # this worker's CPU seconds, start-up included
    except BaseException as e:  # noqa: BLE001 - reported to the main process as one line
        from ..errors import SpecprobeError as _E

        msg = str(e) if isinstance(e, (_E, ValueError)) else f"worker: unexpected {type(e).__name__}: {e}"
        results.put(("error", msg))


def default_workers(device_type: str, n_runs: int, distributed: bool) -> int:
    """CPU: one process per core this process may use (at most one per arm); GPU or torchrun: 1."""
    import os

    if device_type != "cpu" or distributed:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_runs))


# ------------------------------------------------------------------ file-level entry point


def lookahead(checkpoint=None, *, data: str | os.PathLike[str] | None = None,
              train_data: str | os.PathLike[str] | None = None, variants: Sequence | None = None,
              settings: LookaheadSettings = LookaheadSettings(), n_train: int | None = None, n_eval: int | None = None,
              device: str = "auto", threads: int | None = None, workers: int | None = None,
              cache_dir: str | os.PathLike[str] | None = None, options: LoadOptions | None = None, train_time_stop: str | None = None, eval_time_start: str | None = None,
              rollout_steps: int | None = None, rule: Rule | None = None, command_line: list[str] | None = None,
              timestamp: bool = True, progress: Callable[[int, int], None] | None = None) -> dict:
    """The lookahead sweep on a checkpoint: fine-tune every arm, score and roll it out, judge and recommend.

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled model).
        data: evaluation data (torch-harmonics: default the bundled held-out pairs; fme: netCDF split by
            time into training and evaluation pairs).
        train_data: training pairs from another source (torch-harmonics default: fresh shallow-water
            pairs, cached).
        variants: the whitened arms (strings, fme dicts or configs); None: the default sweep, gamma 0, 0.2,
            0.5, 0.8, 1 at eps_frac 0.02 (:func:`sweep_variants`).
        settings: steps, batches, orders, optimizer and lr (:class:`LookaheadSettings`).
        n_train, n_eval: training / evaluation pairs in the pools (None: the family's defaults).
        device: ``auto``, ``cpu``, ``cuda[:i]``.
        threads: CPU threads per process (None: the idle cores shared by the processes; 1 when ``timestamp``
            is False, the reproducible mode).
        workers: processes that share the arms (None: one per CPU core, 1 on a GPU or under torchrun).
            Results do not depend on it.
        cache_dir: where fresh training pairs are cached (None: ``$SPECPROBE_CACHE`` or ~/.cache/specprobe).
        options: how to load the checkpoint (:class:`~specprobe.models.options.LoadOptions`: ``trust``,
            ``ema``); None: the defaults.
        train_time_stop, eval_time_start: fme netCDF data: the last training and first evaluation time.
        rollout_steps: roll out the checkpoint and every arm this many steps from held-out states (None:
            the default, 20; 0: no rollout).
        rule: the recommendation rule (:class:`~specprobe.probing.recommend.Rule`); None: the default
            (low-band cost at most 0.5%).
        command_line: recorded in the provenance (default: ``sys.argv``).
        timestamp: False: no time or timings in the result (byte-identical reruns).
        progress: called as ``progress(runs_done, n_runs)``.

    Returns:
        The ``lookahead.json`` dict: per arm and band the checkpoint's value, the paired noise, each arm vs
        the checkpoint and vs the baseline (``table``), the trajectory, rollout health, the recommendation
        with its reasons, and the provenance. ``specprobe.load_result`` reads it.

    Raises:
        ValueError, SpecprobeError: bad settings, an adapter that cannot fine-tune, overlapping training and
            evaluation pairs, or data the model cannot take.
    """
    import os

    import torch

    from .context import RunContext

    if variants is None:
        variants = sweep_variants(DEFAULT_GAMMAS)
    configs = parse_variants(variants)  # parse errors before any loading
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    if rollout_steps is not None and (isinstance(rollout_steps, bool) or not isinstance(rollout_steps, int)
                                      or rollout_steps < 0):
        raise ValueError(f"rollout steps: expected an integer >= 0, got {rollout_steps!r}")
    ctx = RunContext.start(checkpoint, device=device, threads=threads, timestamp=timestamp)
    world, dev = ctx.world, ctx.device  # under torchrun: arms spread over the ranks
    n_runs = len(arm_runs(configs, settings))
    n_workers = workers if workers is not None else default_workers(dev.type, n_runs, world is not None)
    if n_workers > 1 and (dev.type != "cpu" or world is not None):
        raise SpecprobeError("--workers > 1 spreads arms over CPU processes; on a GPU or under torchrun use 1 "
                             "(torchrun already spreads the arms over its ranks)")
    n_workers = min(n_workers, n_runs)
    n_threads = ctx.share_cores(threads, world.local_size if world is not None else n_workers)
    path = ctx.path
    torch.manual_seed(settings.seed)
    if options is None:
        from ..models.options import LoadOptions

        options = LoadOptions()
    target = ctx.load(options)
    if not hasattr(target, "lookahead_pools"):
        raise SpecprobeError(f"{path}: the {target.family} adapter cannot fine-tune (no training data source)")
    resolve_lr(target, target.training_recipe().get("optimizer"), settings)  # a refused lr fails before any data
    pool_kwargs = {"n_train": n_train, "n_eval": n_eval, "seed": settings.seed, "cache_dir": cache_dir}
    if pool_kwargs["n_train"] is None:
        pool_kwargs.pop("n_train")
    if train_time_stop is not None or eval_time_start is not None:
        if target.family != "fme":
            raise SpecprobeError("--train-time-stop/--eval-time-start split fme netCDF data by time; "
                                 "torch-harmonics checkpoints take --train-data")
        pool_kwargs.update(train_time_stop=train_time_stop, eval_time_start=eval_time_start)
    t0 = time.perf_counter()
    train_pool, eval_pool = target.lookahead_pools(data, train_data, **pool_kwargs)
    check_disjoint(train_pool, eval_pool)  # before building anything else
    rollout, rollout_spec, rollout_note = _rollout_for(target, data, train_pool, rollout_steps, settings, cache_dir)
    data_s = time.perf_counter() - t0
    pool = None
    if n_workers > 1:
        spec = {"checkpoint": str(path), "device": "cpu", "options": options, "data": data,
                "train_data": train_data, "pool_kwargs": pool_kwargs, "rollout": rollout_spec}
        pool = WorkerPool(n_workers, n_threads or 1, spec, _pools_digest(train_pool, eval_pool))
    try:
        result = run_lookahead(target, train_pool, eval_pool, variants=configs, settings=settings, progress=progress,
                               shard=world.shard() if world is not None else None, workers=pool, rollout=rollout,
                               rule=rule)
    finally:
        if pool is not None:
            pool.close()
    if rollout_note:
        result["rollout_note"] = rollout_note
    result["provenance"] = ctx.provenance(target, ema=options.ema, command_line=command_line,
                                          split="arms: arm i on rank i % world_size")
    result["provenance"].update({
        "training_recipe_used": {"loss": result["loss"], "optimizer": result["optimizer"]},
        "processes": n_workers,
        "seed": settings.seed,
    })
    if timestamp:
        result["provenance"]["data_seconds"] = round(data_s, 3)
        result["provenance"]["load_average"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        result["provenance"]["main_process_cpu_s"] = round(time.process_time(), 3)
    else:
        result.pop("elapsed_s", None)
        result.pop("workers", None)
        result["provenance"].pop("processes", None)
        for a in result["arms"]:
            a.pop("seconds", None)
        for r in [result.get("rollout", {}).get("checkpoint")] + [a.get("rollout") for a in result["arms"]]:
            if r:
                r.pop("seconds", None)
    return result


def _rollout_for(target, data, train_pool, rollout_steps, settings, cache_dir):
    """(rollout {settings, set} or None, what a worker needs to rebuild it, a note when it is skipped)."""
    if rollout_steps == 0:
        return None, None, "rollout health off (--rollout-steps 0)"
    try:
        from .rollout_health import RolloutSettings, build_rollout_set
    except ImportError:  # a build without the rollout module
        return None, None, "rollout health not available in this build"
    if not hasattr(target, "rollout_set"):
        return None, None, f"rollout health: the {target.family} adapter cannot roll out"
    rs = RolloutSettings() if rollout_steps is None else RolloutSettings(steps=rollout_steps)
    rs = replace(rs, seed=settings.seed)
    # torch-harmonics --data holds evaluation pairs, too short for a rollout: the solver gives the reference
    rdata = data if target.family == "fme" else None
    try:
        rset = build_rollout_set(target, rdata, settings=rs, cache_dir=cache_dir, avoid=(train_pool,))
    except DataError as e:
        if rollout_steps is not None:  # asked for: the user hears why it cannot be done
            raise
        return None, None, f"rollout health skipped: {e} (give --rollout-steps N to require it)"
    return {"settings": rs, "set": rset}, {"settings": asdict(rs), "data": rdata}, None
