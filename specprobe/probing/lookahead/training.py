"""One arm's fine-tune: batch orders, the training loop, :class:`ArmRunner` (every arm and order), :func:`run_lookahead`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ...errors import DataError, SpecprobeError
from ...spectral import ensemble_loss, parse_bands
from ...spectral.whitening import parse_variants
from ..recommend import Rule
from .config import LookaheadSettings
from .recipe import optimizer_factory, resolve_loss, resolve_lr
from .scoring import band_values, evaluate
from .summary import summarise

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
        from ..rollout_health import rollout_health

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
