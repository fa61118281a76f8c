"""What ``specprobe lookahead`` needs from an fme checkpoint: the run's training recipe and data pools.

Training recipe: the loss and ensemble size from the run's training config (``loss_config``), and the
optimizer from ``ckpt.tar``'s ``optimization.optimizer_state_dict`` (moments and the lr the scheduler
had reached) with its type from ``<experiment_dir>/config.yaml`` (``optimization.optimizer_type``),
else inferred from the state's param group (torch writes ``decoupled_weight_decay`` True for AdamW).

Data: a time split of one ``--data`` source read by fme's own dataset code (training pairs strictly before evaluation pairs, no shared
state), two sources (``train_data`` and ``data``), or seeded synthetic pairs, marked synthetic.
"""

from __future__ import annotations


from ...errors import DataError
from ..base import PairPool, state_fingerprints


def training_recipe(target) -> dict:
    cfg = target.loss_config or {}
    loss = None
    if cfg.get("type") == "EnsembleLoss":
        kw = cfg.get("kwargs") or {}
        loss = {"crps_weight": float(kw.get("crps_weight", 1.0)),
                "energy_score_weight": float(kw.get("energy_score_weight", 0.0)),
                "almost_fair_crps_alpha": float(kw.get("almost_fair_crps_alpha", 1.0)),
                "n_ensemble": cfg.get("n_ensemble"), "whitening_trained": kw.get("energy_score_whitening"),
                "source": target.loss_config_source}
    opt = (target._obj.get("optimization") or {}).get("optimizer_state_dict")
    from .training_config import training_optimizer_config

    yaml_opt = training_optimizer_config(target._obj, target.path)[0] or {}
    optimizer = {"type": yaml_opt.get("optimizer_type"), "lr": yaml_opt.get("lr"), "hyper": {}, "state": None,
                 "max_grad_norm": yaml_opt.get("max_grad_norm"),
                 "source": "training config.yaml" if yaml_opt.get("optimizer_type") else "not recorded"}
    if opt:
        group = opt["param_groups"][0]
        kind = optimizer["type"] or ("AdamW" if group.get("decoupled_weight_decay") else "Adam")
        if optimizer["type"] == "FusedAdam":
            kind = "AdamW"  # fme builds FusedAdam as torch.optim.AdamW(fused=True)
        optimizer.update(type=kind, lr=float(group["lr"]), state=opt,
                         hyper={k: group[k] for k in ("betas", "eps", "weight_decay", "amsgrad") if k in group},
                         source=("ckpt.tar optimization.optimizer_state_dict (moments, lr the scheduler reached, "
                                 f"betas/eps/weight_decay); type from {'config.yaml' if yaml_opt.get('optimizer_type') else 'the param group'}"))
    return {"loss": loss, "optimizer": optimizer}


def _pool(fields, times, spec, description) -> PairPool:
    from .data import _batch

    meta = {"source": description.get("source"), "synthetic": bool(description.get("synthetic"))}

    def take(indices):
        idx = list(indices)
        return _batch({"data": {k: v[idx] for k, v in fields.items()}, "time": times[idx]}, spec, meta)

    n = int(next(iter(fields.values())).shape[0])
    keys = list(zip(state_fingerprints({k: v[:, 0] for k, v in fields.items()}),
                    state_fingerprints({k: v[:, 1] for k, v in fields.items()})))
    description = {**description, "pairs": n, "first_time": str(times[0, 0]), "last_time": str(times[-1, 1])}
    return PairPool(size=n, take=take, state_keys=keys, description=description)


class _Pairs:
    """One-step (input, target) samples of a ``--data`` source, read by fme's own dataset code."""

    def __init__(self, target, data, spec, *, time_start=None, time_stop=None):
        import datetime as _dt

        from .data import FmeData
        from .sources import resolve_source

        self.source = resolve_source(data, target.path)
        self.data = FmeData(self.source, spec, n_timesteps=spec.n_ic_timesteps + 1,
                            time_start=time_start, time_stop=time_stop)
        self.step = _dt.timedelta(seconds=spec.timestep_seconds or 0)

    def __len__(self):
        return len(self.data)

    def input_time(self, i):
        return self.data.dataset.sample_start_times[i]

    def target_time(self, i):
        return self.input_time(i) + self.step

    def read(self, indices):
        batch = self.data.read(indices, seed=0)
        return dict(batch.data), batch.time.values


def lookahead_pools(target, data, train_data, *, n_train, n_eval, seed, train_time_stop=None, eval_time_start=None):
    from .data import choose_indices, synthetic_series, synthetic_times

    spec = target.data_spec()
    if data is None:
        target._last_source = "synthetic"  # what describe() reports
        if train_data is not None or train_time_stop is not None or eval_time_start is not None:
            raise DataError("--train-data / --train-time-stop / --eval-time-start need --data (the evaluation source)")
        n_eval = n_eval or 16
        train = synthetic_series(spec, n_train, 1_000_003 + seed)
        held = synthetic_series(spec, n_eval, 2_000_003)  # a fixed evaluation set, never a training seed
        recipe = "mean + std * red(l^-2); target = input + tendency_std * red(l^-2)"
        return (_pool(train, synthetic_times(n_train, 0, spec.timestep_seconds), spec,
                      {"source": "synthetic", "synthetic": True, "seed": 1_000_003 + seed, "recipe": recipe}),
                _pool(held, synthetic_times(n_eval, 100_000, spec.timestep_seconds), spec,
                      {"source": "synthetic", "synthetic": True, "seed": 2_000_003, "recipe": recipe}))
    if train_data is not None:
        train_src, eval_src = _Pairs(target, train_data, spec), _Pairs(target, data, spec)
        train_idx, eval_idx = list(range(len(train_src))), list(range(len(eval_src)))
        how = {"split": "two sources", "train_source": str(train_data), "eval_source": str(data)}
    elif train_time_stop is not None or eval_time_start is not None:
        if train_time_stop is None or eval_time_start is None:
            raise DataError("a time split needs both --train-time-stop and --eval-time-start")
        train_src = _Pairs(target, data, spec, time_start=target.time_start, time_stop=train_time_stop)
        eval_src = _Pairs(target, data, spec, time_start=eval_time_start, time_stop=target.time_stop)
        train_idx, eval_idx = list(range(len(train_src))), list(range(len(eval_src)))
        how = {"split": "by time (initial times)", "train_time_stop": str(train_time_stop),
               "eval_time_start": str(eval_time_start)}
    else:
        train_src = eval_src = _Pairs(target, data, spec, time_start=target.time_start, time_stop=target.time_stop)
        n = len(train_src)
        if n < 3:
            raise DataError(f"{data}: {n} input/target pair(s); a time split needs at least 3")
        k = n // 2
        # pair i is (t_i, t_i+1): leaving out pair k means no state is in both halves
        train_idx, eval_idx = list(range(k)), list(range(k + 1, n))
        how = {"split": "by time, first half trains, second half evaluates (one pair left out between)"}
    target._last_source = eval_src.source  # what describe() reports
    if not train_idx or not eval_idx:
        raise DataError(f"{data}: the split leaves {len(train_idx)} training and {len(eval_idx)} evaluation pair(s)")
    if train_src is eval_src or train_time_stop is not None:
        last_train = max(train_src.target_time(i) for i in train_idx)
        first_eval = min(eval_src.input_time(i) for i in eval_idx)
        if not last_train < first_eval:
            raise DataError(f"training times reach {last_train}, evaluation starts at {first_eval}: "
                            "a time split must keep every training state before every evaluation state")
    pick_train = [train_idx[i] for i in choose_indices(len(train_idx), min(n_train, len(train_idx)), seed, "training data")]
    n_eval = len(eval_idx) if n_eval is None else min(n_eval, len(eval_idx))
    pick_eval = eval_idx[:n_eval]
    tf, tt = train_src.read(pick_train)
    ef, et = eval_src.read(pick_eval)
    return (_pool(tf, tt, spec, {"source": str(train_data or data), "synthetic": False, **how}),
            _pool(ef, et, spec, {"source": str(data), "synthetic": False, **how}))
