"""A training run's checkpoints probed on the same batches and seed: is small scale still starving?"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import SpecprobeError
from .api import probe
from .result import ProbeResult, epoch_of
from .sweep import optimizer_columns

_CKPT_NUMBERED = re.compile(r"ckpt_(\d+)\.tar$")


def expand_checkpoints(paths) -> list[Path]:
    """Files as given; a directory becomes its ckpt_NNNN.tar files in epoch order."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if _CKPT_NUMBERED.search(f.name)),
                           key=lambda f: int(_CKPT_NUMBERED.search(f.name).group(1)))
            if not found:
                raise SpecprobeError(f"{p}: directory has no ckpt_NNNN.tar files")
            out.extend(found)
        else:
            out.append(p)
    return out


def high_band_share(result: ProbeResult, variant: str = "baseline") -> float:
    """Fraction of the per-degree gradient (sum over l >= 1 of the total curve) in the high band."""
    y = np.asarray(result.grad_by_l[variant]["total"], dtype=float)
    high = next(b for b in result.bands if b["name"] == "high")
    return float(np.nansum(y[high["lo"]: high["hi"] + 1]) / np.nansum(y[1:]))


def probe_series(paths, *, on_start=None, on_result=None, **probe_kwargs) -> list[tuple[Path, ProbeResult]]:
    """Probe every checkpoint with identical data, seed and options.

    Under torchrun whole checkpoints are spread over the ranks (checkpoint i on rank
    i % world_size, all samples there) and every rank returns every result. ``on_start(i, n,
    path)`` is called before this process probes checkpoint i; ``on_result(i, path, result)``
    as each result is ready in a single process (so a long series leaves files as it goes).
    """
    from . import distributed as dist

    files = expand_checkpoints(paths)
    world = dist.start(probe_kwargs.get("device", "auto"))
    if world is None:
        items = []
        for i, p in enumerate(files):
            if on_start is not None:
                on_start(i, len(files), p)
            items.append((p, probe(p, **probe_kwargs)))
            if on_result is not None:
                on_result(i, p, items[-1][1])
        return items
    shard = world.shard()
    mine = []
    for i, p in enumerate(files):
        if shard.takes(i):
            if on_start is not None:
                on_start(i, len(files), p)
            mine.append(probe(p, distributed=False, **probe_kwargs))
    return list(zip(files, shard.gather_taken(mine)))


def summary_columns(predictability):
    from ..spectral.predictability import summary_columns as columns

    return columns(predictability)


def series_summary(items: list[tuple[Path, ProbeResult]], result_files: list[str] | None = None) -> dict:
    """result_files: each checkpoint's result.json relative to series.json, so the series can be reloaded whole."""
    rows = []
    for i, (path, r) in enumerate(items):
        epoch = epoch_of(r)
        m = _CKPT_NUMBERED.search(path.name)
        if epoch is None and m:
            epoch = int(m.group(1))
        rows.append({"checkpoint": str(path), "epoch": epoch, "index": i,
                     "high_band_share": high_band_share(r), "decline_ratio": r.stats["baseline"]["decline_ratio"],
                     "gsnr_band_median": r.stats["baseline"].get("gsnr_band_median", {}),
                     "high_band_boost": {v: b.get("high") for v, b in r.stats.get("boost", {}).items()},
                     "optimizer_view": {v: optimizer_columns(r, v) for v in r.stats.get("boost", {})},
                     "predictability": summary_columns(r.predictability)})
        if result_files is not None:
            rows[-1]["result"] = result_files[i]
    return {"schema": "specprobe.series/1", "rows": rows}
