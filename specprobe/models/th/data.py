"""Probe data for torch-harmonics SFNOs: the ``specprobe.th-sfno-data`` file (format 1).

One ``torch.save``d dict (loads with ``weights_only=True``), fields in PHYSICAL units (the model's
checkpoint carries its own normalisation):

    format: "specprobe.th-sfno-data", format_version: 1
    channels: {names, units}
    grid: {nlat, nlon, type}
    states: (K, T+1, C, nlat, nlon) float tensor: K trajectories of T+1 states; the pairs are
            (states[k, t], states[k, t+1]), trajectory-major (k = 0's T pairs first)
      or inputs, targets: (N, C, nlat, nlon) each: N explicit pairs
    timestep_hours: float (optional), description: str (optional), source: {...} (optional)

Format 2 (written only with ``encoding="int16-lzma"``, for the size-capped noisy bundled sample) stores
``states`` as ``encoded_states``: {codec: "int16-lzma", shape, offset (C,), scale (C,), data: uint8 tensor},
the lzma-compressed little-endian int16 q with states[:, :, c] = offset[c] + scale[c] * q[:, :, c]
(per channel: offset = mean, scale = max |state - mean| / 32000, so the rounding error is at most
scale / 2, 1/64000 of the channel's largest anomaly from its mean).
Readers of format 1 refuse it by version; this reader reads both.

No torch at module level.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError

DATA_FORMAT = "specprobe.th-sfno-data"
DATA_FORMAT_VERSION = 1
ENCODED_FORMAT_VERSION = 2
CODECS = ("int16-lzma",)


def save_sample(path, states, *, channel_names, units, grid: dict, timestep_hours: float,
                description: str = "", source: dict | None = None, encoding: str | None = None) -> Path:
    """Write trajectories (K, T+1, C, H, W), physical units, atomically; ``encoding="int16-lzma"``: format 2."""
    from .format import atomic_torch_save

    obj = {"format": DATA_FORMAT, "format_version": DATA_FORMAT_VERSION,
           "channels": {"names": list(channel_names), "units": list(units)},
           "grid": {"nlat": int(grid["nlat"]), "nlon": int(grid["nlon"]), "type": str(grid["type"])},
           "timestep_hours": float(timestep_hours), "description": description, "source": dict(source or {})}
    states = states.detach().cpu().float().contiguous()
    if encoding is None:
        obj["states"] = states
    else:
        obj["format_version"] = ENCODED_FORMAT_VERSION
        obj["encoded_states"] = encode_states(states, encoding)
    atomic_torch_save(obj, path)
    return Path(path)


def encode_states(states, codec: str = "int16-lzma") -> dict:
    """(K, T, C, H, W) float -> the format-2 ``encoded_states`` dict (see the module docstring)."""
    import lzma

    import numpy as np
    import torch

    if codec not in CODECS:
        raise ValueError(f"encoding: expected one of {CODECS}, got {codec!r}")
    x = states.double().numpy()
    offset = x.mean(axis=(0, 1, 3, 4))
    dev = np.abs(x - offset[None, None, :, None, None]).max(axis=(0, 1, 3, 4))
    scale = np.where(dev > 0, dev / 32000.0, 1.0)
    q = np.round((x - offset[None, None, :, None, None]) / scale[None, None, :, None, None]).astype("<i2")
    data = np.frombuffer(lzma.compress(q.tobytes(), preset=9), dtype=np.uint8).copy()
    return {"codec": codec, "shape": list(states.shape), "offset": offset.tolist(), "scale": scale.tolist(),
            "data": torch.from_numpy(data)}


def decode_states(enc, path="data"):
    """The format-2 ``encoded_states`` dict -> (K, T, C, H, W) float32 tensor; DataError when malformed."""
    import lzma

    import numpy as np
    import torch

    try:
        if enc.get("codec") not in CODECS:
            raise ValueError(f"unknown codec {enc.get('codec')!r}")
        shape = [int(n) for n in enc["shape"]]
        q = np.frombuffer(lzma.decompress(enc["data"].numpy().tobytes()), dtype="<i2").reshape(shape)
        offset = np.asarray(enc["offset"], dtype=np.float64)[None, None, :, None, None]
        scale = np.asarray(enc["scale"], dtype=np.float64)[None, None, :, None, None]
    except (AttributeError, KeyError, TypeError, ValueError, lzma.LZMAError) as e:
        raise DataError(f"{path}: encoded_states: cannot decode ({e})") from None
    return torch.from_numpy((offset + scale * q).astype(np.float32))


def _load(path):
    """The file's object via specprobe's one safe loader; every failure is a one-line DataError."""
    from ...errors import CheckpointError
    from ..safe_load import load_checkpoint_file

    p = Path(path)
    try:
        return load_checkpoint_file(p)  # also: missing, directory, unreadable, empty
    except CheckpointError as e:
        reason = str(e).removeprefix(f"{p}: ")
        raise DataError(f"{p}: not a readable {DATA_FORMAT} file ({reason})") from e


def load_pairs(path):
    """(inputs (N, C, H, W), targets (N, C, H, W), info dict) from a data file, validated, float32."""
    import torch

    obj = _load(path)
    if not isinstance(obj, dict) or obj.get("format") != DATA_FORMAT:
        what = repr(obj.get("format")) if isinstance(obj, dict) and "format" in obj else "no format tag"
        raise DataError(f"{path}: not a {DATA_FORMAT} file ({what})")
    if obj.get("format_version") not in (DATA_FORMAT_VERSION, ENCODED_FORMAT_VERSION):
        raise DataError(f"{path}: {DATA_FORMAT} format_version {obj.get('format_version')!r} is not supported "
                        f"(this specprobe reads versions {DATA_FORMAT_VERSION} and {ENCODED_FORMAT_VERSION})")
    if obj.get("format_version") == ENCODED_FORMAT_VERSION:
        if not isinstance(obj.get("encoded_states"), dict):
            raise DataError(f"{path}: format_version {ENCODED_FORMAT_VERSION}: expected an 'encoded_states' dict")
        obj = dict(obj, states=decode_states(obj["encoded_states"], path))
    channels, grid = obj.get("channels"), obj.get("grid")
    names = channels.get("names") if isinstance(channels, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise DataError(f"{path}: channels.names: expected a non-empty list of strings")
    if not isinstance(grid, dict) or not {"nlat", "nlon", "type"} <= set(grid):
        raise DataError(f"{path}: grid: expected {{nlat, nlon, type}}")
    if isinstance(obj.get("states"), torch.Tensor):
        states = obj["states"]
        if states.ndim != 5 or states.shape[1] < 2:
            raise DataError(f"{path}: states: expected (trajectories, times >= 2, channels, nlat, nlon), "
                            f"got shape {tuple(states.shape)}")
        x = states[:, :-1].reshape(-1, *states.shape[2:])
        y = states[:, 1:].reshape(-1, *states.shape[2:])
        pair_ids = [(k, t) for k in range(states.shape[0]) for t in range(states.shape[1] - 1)]
    elif isinstance(obj.get("inputs"), torch.Tensor) and isinstance(obj.get("targets"), torch.Tensor):
        x, y = obj["inputs"], obj["targets"]
        if x.ndim != 4 or x.shape != y.shape:
            raise DataError(f"{path}: inputs {tuple(x.shape)}, targets {tuple(y.shape)}: expected equal shapes "
                            "(pairs, channels, nlat, nlon)")
        pair_ids = [(i, 0) for i in range(x.shape[0])]
    else:
        raise DataError(f"{path}: expected a 'states' tensor or 'inputs' and 'targets' tensors")
    if x.is_complex() or not x.is_floating_point():
        raise DataError(f"{path}: expected real floating-point fields, got {x.dtype}")
    c, h, w = x.shape[1:]
    if c != len(names):
        raise DataError(f"{path}: {c} channels in the fields but {len(names)} channel names")
    if (h, w) != (grid["nlat"], grid["nlon"]):
        raise DataError(f"{path}: fields are {h}x{w} but grid says {grid['nlat']}x{grid['nlon']}")
    for label, t in (("input", x), ("target", y)):
        bad = ~torch.isfinite(t)
        if bad.any():
            i = int(bad.flatten(1).any(1).nonzero()[0])
            raise DataError(f"{path}: NaN or Inf in {label} fields (pair {i}, channel "
                            f"{names[int(bad[i].flatten(1).any(1).nonzero()[0])]})")
    info = {"channel_names": names, "units": (channels.get("units") or ["unknown"] * c), "grid": dict(grid),
            "timestep_hours": obj.get("timestep_hours"), "description": obj.get("description", ""),
            "pair_ids": pair_ids}
    return x.float(), y.float(), info


# The solver recipe keys every checkpoint trained on shallow-water data records (training config).
RECIPE_KEYS = ("solver_nlat", "solver_nlon", "solver_lmax", "solver_dt", "mach", "spinup_h", "interval_h")


def solver_recipe(target, *, n_traj: int, n_states: int, seed: int) -> dict:
    """The shallow-water recipe of the checkpoint's training data (``target.spec.training.config``) for
    ``n_traj`` trajectories of ``n_states`` states from ``seed``, on the model's grid; None when the
    checkpoint records no such recipe (or is not an h, u, v model)."""
    cfg = (target.spec.training or {}).get("config") or {}
    if any(k not in cfg for k in RECIPE_KEYS) or tuple(target.channel_names) != ("h", "u", "v"):
        return None
    recipe = {"n_traj": n_traj, "n_states": n_states, "seed": seed,
              "interval_h": cfg["interval_h"], "spinup_h": cfg["spinup_h"], "nlat": target.nlat, "nlon": target.nlon,
              "grid": target.data_grid, "solver_nlat": cfg["solver_nlat"], "solver_nlon": cfg["solver_nlon"],
              "lmax": cfg["solver_lmax"], "dt": cfg["solver_dt"], "mach": cfg["mach"]}
    if cfg.get("forcing"):  # the noisy bundled model's stochastic small-scale forcing (absent: unchanged keys)
        recipe["forcing"] = dict(cfg["forcing"])
    return recipe


def default_cache_dir() -> Path:
    """$SPECPROBE_CACHE, else $XDG_CACHE_HOME/specprobe, else ~/.cache/specprobe."""
    import os

    if os.environ.get("SPECPROBE_CACHE"):
        return Path(os.environ["SPECPROBE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "specprobe"


def cached_solver_states(recipe: dict, *, kind: str, target, description: str, generator: str, cache_dir=None):
    """(path, cached): the recipe's trajectories in a ``specprobe.th-sfno-data`` file under the cache,
    named ``swe-KIND-<recipe hash>.pt``; generated by the solver (``swe.trajectories``) when absent."""
    import hashlib
    import json

    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"swe-{kind}-{key}.pt"
    if path.is_file():
        return path, True
    from . import swe

    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cache directory {cache}: cannot create ({e.strerror or e}); set --cache-dir") from None
    states = swe.trajectories(**recipe)
    save_sample(path, states, channel_names=swe.CHANNELS, units=swe.UNITS,
                grid={"nlat": target.nlat, "nlon": target.nlon, "type": target.data_grid},
                timestep_hours=float(recipe["interval_h"]), description=description,
                source={"generator": generator, **recipe})
    return path, False
