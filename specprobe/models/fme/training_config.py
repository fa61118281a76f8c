"""The run's training configuration, as fme's trainer records it: loss, rollout, optimizer.

Current-format checkpoints do not store it: fme's ``train`` entry point writes
``<experiment_dir>/config.yaml`` next to ``<experiment_dir>/training_checkpoints/``, and these
readers take ``stepper_training`` and ``optimization`` from there; legacy checkpoints keep the loss in
their stepper config. No fme import: ``specprobe info`` works without fme.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def as_float(v):
    """float(v), or None where v is None or not a number (a malformed config must not break `info`)."""
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def as_int(v):
    """int(v), or None where v is None or not a number."""
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def training_loss_config(obj, path=None) -> tuple[dict | None, str]:
    """The training loss config and where it came from.

    Legacy stepper configs store ``loss``; current checkpoints do not (the loss lives in the
    training config), but fme's ``train`` entry point writes ``<experiment_dir>/config.yaml`` next
    to ``<experiment_dir>/training_checkpoints/``, so we read ``stepper_training`` from there.
    """
    cfg = obj["stepper"]["config"]
    if isinstance(cfg.get("loss"), Mapping):
        return dict(cfg["loss"]), "checkpoint (legacy stepper config)"
    data, where = _training_yaml(path)
    if data is None:
        return None, where if "unreadable" in where else f"not stored in current-format checkpoints ({where})"
    training = data.get("stepper_training") or {}
    loss = training.get("loss")
    if not isinstance(loss, Mapping):
        return None, f"{where}: no stepper_training.loss (fme default: MSE)"
    out = dict(loss)
    if "n_ensemble" in training:
        out["n_ensemble"] = training["n_ensemble"]
    return out, where


def _training_yaml(path) -> tuple[dict | None, str]:
    """``<experiment_dir>/config.yaml`` beside ``training_checkpoints/`` (fme's train entry point writes it)."""
    if path is None:
        return None, "no checkpoint path"
    p = Path(path).resolve()
    yaml_path = p.parent.parent / "config.yaml"
    if p.parent.name != "training_checkpoints" or not yaml_path.is_file():
        return None, "no training config.yaml next to training_checkpoints/"
    try:
        import yaml

        with open(yaml_path) as f:
            data = yaml.safe_load(f)
        return (data if isinstance(data, Mapping) else {}), str(yaml_path)
    except Exception as e:  # noqa: BLE001 - a broken side file must not break `info`
        return None, f"{yaml_path}: unreadable ({type(e).__name__})"


def _longest_rollout(value, epoch) -> tuple[int | None, str]:
    """(K, how it was recorded) of fme's ``n_forward_steps``: an int, ``{outcomes: [{steps, probability}]}``
    (sampled per batch) or ``{start_value, milestones: [{epoch, value}]}`` (a schedule). Sampled or
    scheduled: the longest rollout in force at ``epoch`` (fme loads that many steps of data per batch)."""
    if isinstance(value, Mapping) and "start_value" in value:
        current = value.get("start_value")
        for m in sorted(value.get("milestones") or [], key=lambda m: m.get("epoch", 0)):
            if epoch is not None and int(epoch) >= int(m.get("epoch", 0)):
                current = m.get("value")
        k, how = _longest_rollout(current, epoch)
        return k, f"schedule {value} -> {how} at epoch {epoch}"
    if isinstance(value, Mapping) and "outcomes" in value:
        outcomes = {int(o["steps"]): float(o.get("probability", 1.0)) for o in value["outcomes"]}
        return max(outcomes), f"sampled per batch {outcomes}; longest probed by default"
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"unrecognised n_forward_steps {value!r}"
    return int(value), str(value)


def training_rollout_config(obj, path=None) -> dict:
    """How the run rolled out in training: ``n_forward_steps`` (the default K of ``--n-forward-steps``),
    ``optimize_last_step_only``, ``pushforward_steps``, ``sqrt_loss_step_decay_constant``, ``source``.

    Current fme: ``stepper_training`` of ``<experiment_dir>/config.yaml``; older current-format
    checkpoints kept ``train_n_forward_steps``/``optimize_last_step_only`` in the stepper config (fme
    drops them on load); legacy trainer configs had ``n_forward_steps`` at the top level. Nothing
    recorded: one step.
    """
    stepper_cfg = obj["stepper"]["config"]
    data, where = _training_yaml(path)
    training = (data or {}).get("stepper_training")
    training = training if isinstance(training, Mapping) else {}
    loss_cfg, _ = training_loss_config(obj, path)
    out = {"n_forward_steps": 1, "recorded": None, "optimize_last_step_only": False, "pushforward_steps": 0,
           "sqrt_loss_step_decay_constant": as_float((loss_cfg or {}).get("sqrt_loss_step_decay_constant")) or 0.0,
           "source": "not recorded (fme trains 1 step unless told otherwise)"}
    for value, keys, source in (
        (training.get("n_forward_steps"), training, where),
        (stepper_cfg.get("train_n_forward_steps"), stepper_cfg, "checkpoint (stepper config)"),
        ((data or {}).get("n_forward_steps"), data or {}, f"{where} (legacy top-level)"),
    ):
        if value is None:
            continue
        try:
            k, how = _longest_rollout(value, obj.get("epoch"))
        except (KeyError, TypeError, ValueError, AttributeError):  # a malformed config must not break `info`
            k = None
        if k is None or k < 1:
            continue
        out.update(n_forward_steps=k, recorded=how, source=source,
                   optimize_last_step_only=bool(keys.get("optimize_last_step_only", False)),
                   pushforward_steps=as_int(keys.get("pushforward_steps", 0)) or 0)
        break
    return out


def training_optimizer_config(obj, path=None) -> tuple[dict | None, str]:
    """The run's ``optimization`` section (optimizer_type, lr, kwargs) and where it came from.

    Checkpoints do not store it; fme's ``train`` writes ``<experiment_dir>/config.yaml`` next to
    ``training_checkpoints/`` (as for :func:`training_loss_config`). fme's default is Adam.
    """
    data, where = _training_yaml(path)
    if data is None:
        return None, f"not stored in checkpoints ({where})"
    opt = data.get("optimization")
    if not isinstance(opt, Mapping):
        return {"optimizer_type": "Adam"}, f"{where}: no optimization section (fme default: Adam)"
    return dict(opt), where
