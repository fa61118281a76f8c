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

No torch at module level.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError

DATA_FORMAT = "specprobe.th-sfno-data"
DATA_FORMAT_VERSION = 1


def save_sample(path, states, *, channel_names, units, grid: dict, timestep_hours: float,
                description: str = "", source: dict | None = None) -> Path:
    """Write trajectories (K, T+1, C, H, W), physical units, atomically."""
    from .format import atomic_torch_save

    obj = {"format": DATA_FORMAT, "format_version": DATA_FORMAT_VERSION,
           "channels": {"names": list(channel_names), "units": list(units)},
           "grid": {"nlat": int(grid["nlat"]), "nlon": int(grid["nlon"]), "type": str(grid["type"])},
           "states": states.detach().cpu().float().contiguous(),
           "timestep_hours": float(timestep_hours), "description": description, "source": dict(source or {})}
    atomic_torch_save(obj, path)
    return Path(path)


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
    if obj.get("format_version") != DATA_FORMAT_VERSION:
        raise DataError(f"{path}: {DATA_FORMAT} format_version {obj.get('format_version')!r} is not supported "
                        f"(this specprobe reads version {DATA_FORMAT_VERSION})")
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
