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

import re
from collections.abc import Mapping
from pathlib import Path

from .layouts import static_layouts
from .training_config import (  # noqa: F401 - training_optimizer_config: where callers found it before
    as_float,
    as_int,
    training_loss_config,
    training_optimizer_config,
    training_rollout_config,
)

# Checkpoint-file names fme's Trainer writes; used only to label the file in describe().
_TRAINER_FILES = {
    "ckpt.tar": "latest (with optimizer state and EMA weights)",
    "best_ckpt.tar": "best validation loss (no optimizer state, no EMA weights)",
    "best_inference_ckpt.tar": "best inline-inference error (no optimizer state, no EMA weights)",
}
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
    params, unplaced = static_layouts(module_state(obj), str(builder.get("type", "?")), bcfg, grid["nlat"],
                                      degree_axis_overrides)
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
        "best_validation_loss": as_float(obj.get("best_validation_loss")),
        "optimizer_state": opt is not None and "optimizer_state_dict" in opt,
        "ema_present": "ema_params" in ema,
        "ema": {"decay": as_float(ema.get("decay")), "num_updates": as_int(ema.get("num_updates"))} if ema else None,
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


def _metadata(obj) -> dict:
    meta = (obj["stepper"].get("dataset_info") or {}).get("variable_metadata") or {}
    out = {}
    for k, v in meta.items():
        units = getattr(v, "units", None) if not isinstance(v, Mapping) else v.get("units")
        long_name = getattr(v, "long_name", None) if not isinstance(v, Mapping) else v.get("long_name")
        out[str(k)] = {"units": units, "long_name": long_name}
    return out


