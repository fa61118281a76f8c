"""What an fme/ACE checkpoint holds, read from the loaded dict alone: no fme import, no model built.

``specprobe info`` must work where fme is not installed, so everything here walks the plain dict
that :func:`~specprobe.models.safe_load.load_checkpoint_file` returns (fme's ``Trainer.save_checkpoint``
layout: ``ckpt.tar``, ``best_ckpt.tar``, ``best_inference_ckpt.tar``, ``ckpt_{epoch:04d}.tar``):

- current format: ``stepper = {config: {step: {type, config}}, dataset_info, step: {module}, ...}``
- legacy format (``SingleModuleStepperConfig``): ``stepper = {config: {builder, in_names, ...},
  module, normalizer|normalization, area|img_shape, ...}``

Degree axes found here are *static* guesses from key names, shapes and the builder config; the
adapter (:mod:`.layouts`) re-derives them from the live fme modules, which is authoritative.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path

# Checkpoint-file names fme's Trainer writes; used only to label the file in describe().
_TRAINER_FILES = {
    "ckpt.tar": "latest (with optimizer state and EMA weights)",
    "best_ckpt.tar": "best validation loss (no optimizer state, no EMA weights)",
    "best_inference_ckpt.tar": "best inline-inference error (no optimizer state, no EMA weights)",
}
_FILTER_KEY = re.compile(r"(^|\.)filter\.")
# Under a filter path but not per-degree: spectral_ratio projections, biases, DISCO (local) convolutions.
_NOT_SPECTRAL_KEY = re.compile(r"(proj\.weight|\.bias|\.filter\.conv\.weight)$")


def is_fme_checkpoint(obj) -> bool:
    """A dict with a ``stepper`` holding a ``config`` and its weights (current or legacy layout)."""
    if not isinstance(obj, Mapping):
        return False
    stepper = obj.get("stepper")
    if not isinstance(stepper, Mapping) or not isinstance(stepper.get("config"), Mapping):
        return False
    return isinstance(stepper.get("step"), Mapping) or isinstance(stepper.get("module"), Mapping)


def checkpoint_format(obj) -> str:
    """``fme-legacy`` when the stepper config is a ``SingleModuleStepperConfig`` (has ``builder``)."""
    return "fme-legacy" if "builder" in obj["stepper"]["config"] else "fme-current"


def single_module_config(obj) -> dict:
    """The dict with ``builder``, ``in_names``, ``out_names`` (unwrapping ``multi_call`` steps)."""
    config = obj["stepper"]["config"]
    if "builder" in config:
        return dict(config)
    selector = config.get("step", {})
    for _ in range(4):  # multi_call nests one level; allow a little more
        cfg = selector.get("config", {}) if isinstance(selector, Mapping) else {}
        if "builder" in cfg:
            return dict(cfg)
        selector = cfg.get("wrapped_step")
        if selector is None:
            break
    return {}


def step_type(obj) -> str:
    config = obj["stepper"]["config"]
    if "builder" in config:
        return "single_module (legacy SingleModuleStepperConfig)"
    step = config.get("step", {})
    kind = str(step.get("type", "?"))
    wrapped = step.get("config", {}).get("wrapped_step") if isinstance(step.get("config"), Mapping) else None
    return f"{kind}({wrapped.get('type')})" if isinstance(wrapped, Mapping) else kind


def module_state(obj) -> dict:
    """The network's state dict (keys like ``module.blocks.0.filter.filter.weight``)."""
    stepper = obj["stepper"]
    if "module" in stepper and isinstance(stepper["module"], Mapping):
        return dict(stepper["module"])
    step = stepper.get("step", {})
    for _ in range(4):
        if isinstance(step.get("module"), Mapping):
            return dict(step["module"])
        step = step.get("wrapped_step", {})
        if not isinstance(step, Mapping):
            break
    return {}


def _to_list(t):
    return [float(v) for v in t.reshape(-1).tolist()] if hasattr(t, "reshape") else list(t)


def grid_info(obj) -> dict:
    """nlat, nlon and the latitudes (when stored) of the training grid."""
    stepper = obj["stepper"]
    info = stepper.get("dataset_info") or {}
    coords = info.get("horizontal_coordinates") or {}
    if "lat" in coords and "lon" in coords:
        lat, lon = _to_list(coords["lat"]), _to_list(coords["lon"])
        return {"kind": "latlon", "nlat": len(lat), "nlon": len(lon), "lat": lat, "lon": lon}
    if "face" in coords:
        return {"kind": "healpix", "nlat": None, "nlon": None}
    shape = info.get("img_shape") or stepper.get("img_shape")
    if shape is None and stepper.get("area") is not None:
        shape = tuple(stepper["area"].shape[-2:])
    if shape is None and isinstance(stepper.get("data_shapes"), Mapping):
        for s in stepper["data_shapes"].values():
            if len(s) == 4:
                shape = tuple(s[-2:])
                break
    gops = info.get("gridded_operations") or {}
    if shape is None and isinstance(gops.get("state"), Mapping) and "area_weights" in gops["state"]:
        shape = tuple(gops["state"]["area_weights"].shape[-2:])
    if shape is None:
        return {"kind": "unknown", "nlat": None, "nlon": None}
    return {"kind": "latlon", "nlat": int(shape[0]), "nlon": int(shape[1]), "lat": None, "lon": None}


def infer_grid_from_latitudes(lat) -> str | None:
    """``legendre-gauss`` / ``equiangular`` when the stored latitudes match either node set."""
    import numpy as np

    if not lat or len(lat) < 2:
        return None
    n = len(lat)
    got = np.sort(np.asarray(lat, dtype=float))
    lg = np.sort(np.degrees(np.arcsin(np.polynomial.legendre.leggauss(n)[0])))
    eq = np.linspace(-90.0, 90.0, n)  # torch-harmonics "equiangular" includes both poles
    if np.allclose(got, lg, atol=1e-3):
        return "legendre-gauss"
    if np.allclose(got, eq, atol=1e-3):
        return "equiangular"
    return None


def timestep_seconds(obj) -> float | None:
    stepper = obj["stepper"]
    us = (stepper.get("dataset_info") or {}).get("timestep", stepper.get("encoded_timestep"))
    return None if us is None else float(us) / 1e6


def normalization_states(obj) -> dict:
    """{network, loss, residual}: each {means, stds} or None, as the checkpoint stores them."""
    stepper = obj["stepper"]
    if checkpoint_format(obj) == "fme-legacy":
        net = stepper.get("normalizer", stepper.get("normalization"))
        loss = stepper.get("loss_normalizer", stepper.get("loss_normalization"))
        return {"network": net, "loss": loss, "residual": None}
    norm = single_module_config(obj).get("normalization") or {}
    return {k: norm.get(k) for k in ("network", "loss", "residual")}


def _norm_summary(state, names) -> dict | None:
    if not isinstance(state, Mapping):
        return None
    means, stds = state.get("means") or {}, state.get("stds") or {}
    if not means and state.get("global_means_path"):
        return {"from_files": [state.get("global_means_path"), state.get("global_stds_path")]}
    return {n: {"mean": float(means[n]), "std": float(stds[n])} for n in names if n in means and n in stds}


def expected_degrees(builder_type: str, builder_cfg: Mapping, nlat: int | None) -> int | None:
    """Number of degrees L of the filters, as fme's builders size their transforms."""
    if nlat is None:
        return None
    htf = float(builder_cfg.get("hard_thresholding_fraction", 1.0))
    if builder_type == "NoiseConditionedSFNO":
        return int(nlat * htf)
    if builder_type in ("SphericalFourierNeuralOperatorNet", "SFNO-v0.1.0"):
        default_scale = 16 if builder_type == "SFNO-v0.1.0" else 1
        return int((nlat // int(builder_cfg.get("scale_factor", default_scale))) * htf)
    return None


def _static_axis(builder_type, cfg, name, shape, dtype, L):
    """(degree_axis | None, layout, l0_bypassed) of a tensor we know, or None if we cannot place it."""
    leaf = name.rsplit(".", 1)[-1]
    complex_ = "complex" in dtype
    if builder_type == "NoiseConditionedSFNO":
        ftype = cfg.get("filter_type", "linear")
        l0 = bool(cfg.get("filter_preserves_global_mean", False)) and ftype == "linear"
        if ftype == "makani-linear" and leaf == "weight" and complex_ and len(shape) == 4:
            return 3, "(G, Cin/G, Cout/G, L) complex64, fme makani-linear dhconv", False
        if ftype == "linear" and leaf in ("weight", "lora_A", "lora_B") and shape[-1] == 2:
            if len(shape) == 5 and (L is None or shape[1] == L):
                kind = {"weight": "(G, L, Cs/G, Cs/G, 2)", "lora_A": "(G, L, r, Cs/G, 2)",
                        "lora_B": "(G, L, Cs/G, r, 2)"}[leaf]
                return 1, f"{kind} real (re, im), fme linear dhconv", l0
            if len(shape) == 5 and shape[3] == L:  # written before fme moved L to axis 1 (permuted on load)
                return 3, "(G, Cin, Cout, L, 2) real (re, im), older fme layout (fme permutes on load)", l0
            if len(shape) == 4 and shape[2] == L:  # ungrouped, even older
                return 2, "(Cs, Cs, L, 2) real (re, im), ungrouped older fme layout", l0
        return None
    nonlinear = re.search(r"filter\.filter\.(w|wout|b)(\.\d+)?$", name)
    if builder_type == "SphericalFourierNeuralOperatorNet" and cfg.get("filter_type") == "non-linear" and nonlinear:
        if nonlinear.group(1) != "b" and cfg.get("operator_type", "diagonal") == "l-dependant" and len(shape) == 4:
            return 0, "(L, in, out, 2) real (re, im), SFNO non-linear l-dependant", False
        return None, "shared by all degrees (SFNO non-linear filter)", False
    if builder_type in ("SphericalFourierNeuralOperatorNet", "SFNO-v0.1.0") and leaf == "weight":
        if not name.endswith("filter.filter.weight") or shape[-1] != 2:
            return None
        separable = bool(cfg.get("separable", False))
        op = cfg.get("operator_type", "diagonal" if builder_type == "SphericalFourierNeuralOperatorNet" else "dhconv")
        axis = 1 if separable else 2
        if L is not None and (len(shape) <= axis or shape[axis] != L):
            return None
        lib = "modulus SFNO (legacy ACE)" if builder_type == "SphericalFourierNeuralOperatorNet" else "makani SFNO v0.1.0"
        io = "(Cin" + ("" if separable else ", Cout")
        if op == "diagonal":
            return axis, f"{io}, L, M, 2) real (re, im), {lib} diagonal (m at {axis + 1})", False
        return axis, f"{io}, L, 2) real (re, im), {lib} dhconv", False
    return None


def static_layouts(obj, overrides: Mapping[str, int | None] | None = None) -> tuple[list[dict], list[dict]]:
    """(params, unplaced): every tensor of the module state with a static degree-axis guess.

    ``unplaced`` lists filter tensors (under a ``.filter.`` path, >= 3 dims) whose layout is unknown.
    """
    cfg_all = single_module_config(obj)
    builder = cfg_all.get("builder") or {}
    btype, bcfg = str(builder.get("type", "?")), dict(builder.get("config") or {})
    L = expected_degrees(btype, bcfg, grid_info(obj).get("nlat"))
    params, unplaced = [], []
    for name, t in module_state(obj).items():
        if not hasattr(t, "shape"):
            continue
        shape, dtype = list(t.shape), str(getattr(t, "dtype", "")).removeprefix("torch.")
        entry = {"name": name, "shape": shape, "dtype": dtype, "degree_axis": None, "layout": "", "l0_bypassed": False}
        placed = _static_axis(btype, bcfg, name, shape, dtype, L)
        if placed is not None:
            entry["degree_axis"], entry["layout"], entry["l0_bypassed"] = placed
        hit, override = _match_override(name, overrides)
        if hit:
            axis = None if override is None or str(override).lower() == "none" else int(override) % max(len(shape), 1)
            entry["degree_axis"], entry["layout"] = axis, "user override (--degree-axis)"
        elif placed is None and _FILTER_KEY.search(name) and len(shape) >= 2 and not _NOT_SPECTRAL_KEY.search(name):
            entry["layout"] = "unknown"
            unplaced.append(entry)
        params.append(entry)
    return params, unplaced


def _match_override(name, overrides):
    for pattern, axis in (overrides or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return True, axis
    return False, None


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


def describe_fme_checkpoint(obj, path=None, *, degree_axis_overrides: Mapping[str, int | None] | None = None) -> dict:
    """JSON-able description of an fme checkpoint without importing fme or building the model."""
    if not is_fme_checkpoint(obj):
        raise ValueError("not an fme checkpoint (expected a dict with stepper.config and its weights)")
    cfg = single_module_config(obj)
    builder = cfg.get("builder") or {}
    in_names, out_names = list(cfg.get("in_names") or []), list(cfg.get("out_names") or [])
    grid = grid_info(obj)
    bcfg = dict(builder.get("config") or {})
    lat_grid = infer_grid_from_latitudes(grid.get("lat"))
    norms = normalization_states(obj)
    all_names = sorted(set(in_names) | set(out_names))
    params, unplaced = static_layouts(obj, degree_axis_overrides)
    ema = obj.get("ema") if isinstance(obj.get("ema"), Mapping) else {}
    opt = obj.get("optimization") if isinstance(obj.get("optimization"), Mapping) else None
    loss_cfg, loss_src = training_loss_config(obj, path)
    name = Path(path).name if path is not None else None
    kind = _TRAINER_FILES.get(name) or ("per-epoch checkpoint" if name and re.fullmatch(r"(ema_)?ckpt_\d+\.tar", name) else None)
    return {
        "format": checkpoint_format(obj),
        "file_kind": kind,
        "step_type": step_type(obj),
        "builder": {"type": builder.get("type"), "config": bcfg, "conditional": bool(builder.get("conditional", False))},
        "grid": {"kind": grid["kind"], "nlat": grid["nlat"], "nlon": grid["nlon"],
                 "data_grid": lat_grid or bcfg.get("data_grid", "legendre-gauss"),
                 "data_grid_from": "stored latitudes" if lat_grid else "builder config data_grid (default legendre-gauss)",
                 "loss_grid": "legendre-gauss",
                 "lat_range": [min(grid["lat"]), max(grid["lat"])] if grid.get("lat") else None},
        "in_names": in_names,
        "out_names": out_names,
        "channel_names": sorted(out_names),
        "forcing_names": sorted(set(in_names) - set(out_names)),
        "prognostic_names": sorted(set(in_names) & set(out_names)),
        "residual_prediction": cfg.get("residual_prediction"),
        "corrector": _short(cfg.get("corrector")),
        "normalization": {k: _norm_summary(v, all_names) for k, v in norms.items()},
        "spectral_parameters": [p for p in params if p["degree_axis"] is not None],
        "unplaced_filter_parameters": unplaced,
        "n_parameters": int(sum(_numel(p["shape"]) for p in params)),
        "epoch": obj.get("epoch"),
        "num_batches_seen": obj.get("num_batches_seen"),
        "best_validation_loss": _float(obj.get("best_validation_loss")),
        "optimizer_state": opt is not None and "optimizer_state_dict" in opt,
        "ema_present": "ema_params" in ema,
        "ema": {"decay": _float(ema.get("decay")), "num_updates": _int(ema.get("num_updates"))} if ema else None,
        "timestep_seconds": timestep_seconds(obj),
        "variable_metadata": _metadata(obj),
        "training_loss": loss_cfg,
        "training_loss_source": loss_src,
        "training_rollout": training_rollout_config(obj, path),
        "training_history": list(obj["stepper"].get("training_history") or []),
        "described_with": "checkpoint dict only (fme not imported); degree axes are static guesses",
    }


def _short(v):
    return v if not isinstance(v, Mapping) else {k: v[k] for k in list(v)[:12]}


def _numel(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _float(v):
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _int(v):
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _metadata(obj) -> dict:
    meta = (obj["stepper"].get("dataset_info") or {}).get("variable_metadata") or {}
    out = {}
    for k, v in meta.items():
        units = getattr(v, "units", None) if not isinstance(v, Mapping) else v.get("units")
        long_name = getattr(v, "long_name", None) if not isinstance(v, Mapping) else v.get("long_name")
        out[str(k)] = {"units": units, "long_name": long_name}
    return out


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
           "sqrt_loss_step_decay_constant": _float((loss_cfg or {}).get("sqrt_loss_step_decay_constant")) or 0.0,
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
                   pushforward_steps=_int(keys.get("pushforward_steps", 0)) or 0)
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
