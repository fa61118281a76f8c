"""``specprobe lookahead``: a short A/B fine-tune from a checkpoint, one arm per loss variant.

Every arm (baseline, then each whitening setting) starts from the checkpoint's weights and the same
optimizer state (the checkpoint's own when it stores one, else fresh), takes ``steps`` optimizer
steps of the run's training loss (``crps_weight`` CRPS + ``energy_score_weight`` energy score, the
arm's whitening on the energy score) on the same training batches in the same order with the same
noise seeds, and is scored on held-out pairs the training batches never contain. ``repeats`` more
baseline arms use other batch orders and noise seeds: their spread is the run-to-run noise an arm's
difference must exceed.

Scores (unwhitened, loss space, per channel and per degree l, from ``spectral/``): the energy score
split into skill E|X - y| and spread 0.5 E|X - X'| (fme's per-mode weights and 2 sqrt(LM) scaling,
so the sum over l is the energy-score loss), the ensemble-mean squared error (physical degree power
of mean(X) - y), and the power of the members over the power of the target.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DataError, SpecprobeError
from ..spectral import (
    POWER_CONVENTIONS,
    degree_power,
    energy_score_terms,
    ensemble_loss,
    loss_scaling,
    mode_weights,
    parse_bands,
    to_spectral,
)
from .engine import as_variants

SCHEMA = "specprobe.lookahead/1"
METRICS = ("energy_score", "es_skill", "es_spread", "mse", "power_ratio")
OPTIMIZERS = ("adam", "adamw", "sgd")
EVAL_SEED = 7_000_001  # evaluation noise: the same in every arm and before training


@dataclass(frozen=True)
class LookaheadSettings:
    steps: int = 10
    batch_size: int = 4
    n_ensemble: int | None = None  # None: what the run trained with, else 2
    eval_batch_size: int = 8
    repeats: int = 1
    paired: bool = False  # repeats also rerun every whitened arm: the spread of the paired difference
    seed: int = 0
    crps_weight: float | None = None  # None: what the run trained with
    energy_score_weight: float | None = None
    optimizer: str | None = None  # adam | adamw | sgd; None: the run's
    lr: float | None = None
    bands: str | None = None

    def __post_init__(self):
        for name, lo in (("steps", 0), ("batch_size", 1), ("eval_batch_size", 1), ("repeats", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        if self.n_ensemble is not None and (not isinstance(self.n_ensemble, int) or self.n_ensemble < 1):
            raise ValueError(f"n_ensemble: expected an integer >= 1, got {self.n_ensemble!r}")
        if self.optimizer is not None and self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        for name in ("crps_weight", "energy_score_weight"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")


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
            gh, th = to_spectral(gen, grid=target.loss_grid), to_spectral(tgt, grid=target.loss_grid)
            skill, spread = energy_score_terms(gh, th)
            w = mode_weights(*skill.shape[-2:], device=skill.device, dtype=skill.dtype) / loss_scaling(*skill.shape[-2:])
            parts = {"es_skill": (skill * w).sum(-1), "es_spread": (spread * w).sum(-1),
                     "mse": degree_power(gh.mean(dim=1) - th[:, 0]),
                     "pred_power": degree_power(gh).mean(dim=1), "target_power": degree_power(th[:, 0])}
            for k, v in parts.items():
                v = v.double().sum(dim=0).cpu().numpy()
                sums[k] = v if k not in sums else sums[k] + v
            n += gen.shape[0]
    out = {k: v / n for k, v in sums.items()}
    out["energy_score"] = out["es_skill"] - out["es_spread"]
    return out


def band_values(scores: dict, bands) -> dict:
    """{metric: {band or 'total': {'overall': x, channel index: x}}} from (C, L) arrays."""
    spans = [(b.name, b.lo, b.hi) for b in bands] + [("total", 0, scores["mse"].shape[-1] - 1)]
    out = {m: {} for m in METRICS}
    for name, lo, hi in spans:
        sl = slice(lo, hi + 1)
        for m in METRICS[:4]:
            per_c = scores[m][:, sl].sum(-1)
            out[m][name] = {"overall": float(per_c.mean()), "channels": per_c.tolist()}
        p, t = scores["pred_power"][:, sl].sum(-1), scores["target_power"][:, sl].sum(-1)
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


def run_lookahead(target, train_pool, eval_pool, *, variants=("per_sample",), settings: LookaheadSettings = LookaheadSettings(),
                  progress=None, eval_steps=(), shard=None) -> dict:
    """The A/B on a loaded target and its pools; returns the JSON-able result (without file provenance).

    ``eval_steps``: steps after which each arm is also scored (band values in ``arm["intermediate"]``).
    ``shard`` (distributed runs): this process trains the arms ``shard.takes(i)`` accepts; every arm
    starts from the same weights with seeds from its repeat alone, so the gathered arms are the
    one-process arms."""
    s = settings
    configs = as_variants(variants)
    n_checked = check_disjoint(train_pool, eval_pool)
    recipe = target.training_recipe()
    loss = resolve_loss(recipe.get("loss"), s)
    module = target.trainable_module()
    params = list(module.parameters())  # all of them, as fme's optimizer holds them (frozen ones get no grad)
    make_opt, opt_prov = optimizer_factory(params, recipe.get("optimizer"), s)
    initial = copy.deepcopy(module.state_dict())
    started = time.perf_counter()

    before = evaluate(target, eval_pool, n_ensemble=loss["n_ensemble"], batch_size=s.eval_batch_size)
    n_degrees = before["mse"].shape[-1]
    bands = parse_bands(s.bands, n_degrees)
    rerun = configs if s.paired else configs[:1]
    runs = [(cfg, 0) for cfg in configs] + [(cfg, r) for r in range(1, s.repeats + 1) for cfg in rerun]
    arms = []
    try:
        for i, (cfg, r) in enumerate(runs):
            if shard is not None and not shard.takes(i):
                continue
            module.load_state_dict(initial)
            order_seed = s.seed * 1_000_003 + r
            schedule = batch_schedule(train_pool.size, s.steps, s.batch_size, order_seed)
            t0 = time.perf_counter()
            intermediate = {}

            def score_at(k, intermediate=intermediate):
                if k in eval_steps and k != s.steps:
                    sc = evaluate(target, eval_pool, n_ensemble=loss["n_ensemble"], batch_size=s.eval_batch_size)
                    intermediate[str(k)] = band_values(sc, bands)

            losses = train_arm(target, make_opt, cfg if cfg.kind != "none" else None, schedule, train_pool, loss,
                               noise_seed0=(s.seed * 1_000_003 + r) * 10_007, after_step=score_at if eval_steps else None)
            after = evaluate(target, eval_pool, n_ensemble=loss["n_ensemble"], batch_size=s.eval_batch_size)
            arms.append({"name": cfg.name if r == 0 else f"{cfg.name}#repeat{r}", "variant": cfg.name,
                         "whitening": cfg.to_dict(), "repeat": r, "order_seed": order_seed,
                         "train_loss": losses, "scores": after, "seconds": time.perf_counter() - t0,
                         **({"intermediate": intermediate} if eval_steps else {})})
            if progress is not None:
                progress(i + 1, len(runs))
    finally:
        module.load_state_dict(initial)
    if shard is not None:
        arms = shard.gather_taken(arms)
    return summarise(target, configs, arms, before, bands, loss, opt_prov, s, train_pool, eval_pool,
                     n_checked, time.perf_counter() - started)


def _rel(a, b, ref):
    return (a - b) / abs(ref) if ref and math.isfinite(ref) else math.nan


def compare_bands(arms: list[dict], before_bands: dict) -> dict:
    """Each arm vs the untouched checkpoint and vs the baseline arm, relative to the checkpoint's value;
    noise = RMS over the repeat baselines of (repeat - baseline), in the same units; with paired repeats
    also ``paired_sd``: the standard deviation over batch orders of (arm - baseline) on the same order."""
    base = arms[0]["bands"]
    base_name = arms[0]["variant"]
    repeats = [a["bands"] for a in arms if a["repeat"] > 0 and a["variant"] == base_name]
    by_order = {(a["variant"], a["repeat"]): a["bands"] for a in arms}
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
                d_base = _rel(v, b, ref)
                paired = [_rel(by_order[(a["variant"], r)][m][band]["overall"],
                               by_order[(base_name, r)][m][band]["overall"], ref)
                          for r in range(len(repeats) + 1) if (a["variant"], r) in by_order]
                row["arms"][a["name"]] = {"value": v, "vs_checkpoint": _rel(v, ref, ref), "vs_baseline": d_base,
                                          "beyond_noise": bool(math.isfinite(noise) and abs(d_base) > 2 * noise)
                                          if a is not arms[0] else None}
                if a is not arms[0] and len(paired) > 1:
                    row["arms"][a["name"]]["paired_sd"] = float(np.std(paired, ddof=1))
                    row["arms"][a["name"]]["paired_mean"] = float(np.mean(paired))
            out[m][band] = row
    return out


def summarise(target, configs, arms, before, bands, loss, opt_prov, s, train_pool, eval_pool, n_checked, elapsed) -> dict:
    channels = list(target.channel_names)
    before_bands = band_values(before, bands)
    for a in arms:
        a["bands"] = band_values(a["scores"], bands)
        a["per_degree"] = per_degree(a.pop("scores"), channels)
    table = compare_bands(arms, before_bands)
    return {
        "schema": SCHEMA,
        "channels": channels,
        "degrees": list(range(before["mse"].shape[-1])),
        "bands": [{"name": b.name, "lo": b.lo, "hi": b.hi} for b in bands],
        "variants": [{"name": c.name, "whitening": c.to_dict()} for c in configs],
        "settings": {**asdict(s), "n_ensemble": loss["n_ensemble"]},
        "loss": loss,
        "optimizer": opt_prov,
        "data": {"train": train_pool.description, "eval": eval_pool.description,
                 "disjoint": f"no state of the {train_pool.size} training pairs ({n_checked} distinct states) is in "
                             f"the {eval_pool.size} evaluation pairs (exact byte fingerprints)",
                 "train_order": "seeded shuffles of the training pool; every arm of one repeat uses the same "
                                "batches, order and noise seeds; repeats change order and noise"
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
            "relative_change": "(value - reference) / |checkpoint value|; noise = RMS over repeat baselines of "
                               "(repeat - baseline) in the same units; beyond_noise: |arm - baseline| > 2 noise",
        },
        "before": {"bands": before_bands, "per_degree": per_degree(before, channels)},
        "arms": arms,
        "table": table,
        "elapsed_s": round(elapsed, 3),
    }


# ------------------------------------------------------------------ file-level entry point


def lookahead(checkpoint=None, *, data=None, train_data=None, variants=("per_sample",),
              settings: LookaheadSettings = LookaheadSettings(), n_train: int | None = None, n_eval: int | None = None,
              device: str = "auto", threads: int | None = None, cache_dir=None, trust_checkpoint: bool = False,
              ema: bool = False, train_time_stop=None, eval_time_start=None, command_line=None,
              timestamp: bool = True, progress=None) -> dict:
    """Load a checkpoint (None: the bundled model), build its data pools, run the A/B, add provenance."""
    import datetime as _dt
    import sys
    from pathlib import Path

    import torch

    from ..models.registry import load_target, resolve_checkpoint
    from . import distributed as dist
    from .api import library_versions, sha256_of
    from .engine import configure_cpu_threads, resolve_device

    as_variants(variants)  # parse errors before any loading
    world = dist.start(device)  # under torchrun: arms spread over the ranks
    dev = world.device if world is not None else resolve_device(device)
    if threads is None and not timestamp:
        threads = 1  # reproducible mode: CPU reductions depend on the thread count
    n_threads = (configure_cpu_threads(threads, processes=world.local_size if world is not None else 1)
                 if dev.type == "cpu" else None)
    path = resolve_checkpoint(checkpoint)
    torch.manual_seed(settings.seed)
    target = load_target(path, device=dev, trust=trust_checkpoint, ema=ema)
    if not hasattr(target, "lookahead_pools"):
        raise SpecprobeError(f"{path}: the {target.family} adapter cannot fine-tune (no training data source)")
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
    data_s = time.perf_counter() - t0
    result = run_lookahead(target, train_pool, eval_pool, variants=variants, settings=settings, progress=progress,
                           shard=world.shard() if world is not None else None)
    describe = target.describe()
    result["provenance"] = {
        "checkpoint": {"path": str(path), "sha256": sha256_of(path), "size_bytes": Path(path).stat().st_size,
                       "family": target.family, "format": describe.get("format", target.family), "ema": ema,
                       "bundled_default": checkpoint is None},
        "model": describe,
        "training_recipe_used": {"loss": result["loss"], "optimizer": result["optimizer"]},
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "cpu_threads": n_threads,
        "seed": settings.seed,
        "library_versions": library_versions(),
        "command_line": command_line if command_line is not None else list(sys.argv),
    }
    if world is not None:
        result["provenance"]["distributed"] = world.describe("arms: arm i on rank i % world_size")
    if timestamp:
        result["provenance"]["utc_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        result["provenance"]["data_seconds"] = round(data_s, 3)
    else:
        result.pop("elapsed_s", None)
        for a in result["arms"]:
            a.pop("seconds", None)
    return result
