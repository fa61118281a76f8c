"""The training recipe an arm follows: the run's loss, optimizer and learning rate (``--lr auto|peak|final``)."""

from __future__ import annotations

import copy

from ...errors import SpecprobeError
from .config import AUTO_LR_FRACTION, OPTIMIZERS, LookaheadSettings

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
        from ...models.fme.describe import training_optimizer_config

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
