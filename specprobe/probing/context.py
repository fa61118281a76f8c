"""One setup path for every command: world, device, threads, checkpoint -> target, provenance.

``grad-by-l`` (:func:`specprobe.probing.api.probe`), ``lookahead`` and ``coupling`` all start here,
so every result file carries the same provenance: the checkpoint's path, sha256 and size, the model's
description, the device and CPU threads, library versions, the command line and (unless
``timestamp`` is off, the reproducible mode) the time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.base import ProbeTarget
    from ..models.options import LoadOptions


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256, hex (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict:
    """{specprobe, python, torch, torch_harmonics, numpy[, fme]: version} of this process."""
    import numpy
    import torch
    import torch_harmonics

    from .._version import __version__

    versions = {"specprobe": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "torch_harmonics": torch_harmonics.__version__, "numpy": numpy.__version__}
    if "fme" in sys.modules:
        from importlib.metadata import version

        versions["fme"] = version("fme")
    return versions


@dataclass
class RunContext:
    """Where and how a command runs, and which checkpoint it runs on.

    Build it with :meth:`start` (joins torchrun's world when launched by it, picks the device, sizes
    the CPU thread pool, resolves the checkpoint), then :meth:`load` the target and write
    :meth:`provenance` into the result."""

    world: Any  # specprobe.probing.distributed.World, or None in one process
    device: Any  # torch.device
    threads: int | None  # CPU intra-op threads (None on a GPU)
    path: Path  # the checkpoint file
    bundled_default: bool  # no checkpoint was given: the bundled model
    timestamp: bool = True

    @classmethod
    def start(cls, checkpoint=None, *, device: str = "auto", threads: int | None = None, timestamp: bool = True,
              processes: int | None = None) -> "RunContext":
        """Join torchrun's world (when launched by it), pick the device, size the CPU threads, resolve the file.

        Args:
            checkpoint: a file, ``bundled[:NAME]``, or None (the bundled default).
            device: ``auto`` (the GPU when present; ``$SPECPROBE_DEVICE`` overrides), ``cpu``, ``cuda[:i]``.
            threads: CPU intra-op threads (None: the idle cores shared by ``processes``).
            timestamp: False is the reproducible mode: one CPU thread unless ``threads`` is given, because
                float reductions differ between thread counts (measured 1e-8 relative, 1 vs 2).
            processes: probes sharing this machine's cores (default: torchrun's local ranks, else 1).

        Returns:
            The context.

        Raises:
            SpecprobeError: an unusable device, or a checkpoint that is not a readable file / bundled name.
        """
        from ..models.registry import resolve_checkpoint
        from . import distributed as dist
        from .devices import configure_cpu_threads, resolve_device

        world = dist.start(device)
        dev = world.device if world is not None else resolve_device(device)
        if threads is None and not timestamp:
            threads = 1
        if processes is None:
            processes = world.local_size if world is not None else 1
        n_threads = configure_cpu_threads(threads, processes=processes) if dev.type == "cpu" else None
        return cls(world=world, device=dev, threads=n_threads, path=resolve_checkpoint(checkpoint),
                   bundled_default=checkpoint is None, timestamp=timestamp)

    def share_cores(self, threads: int | None, processes: int) -> int | None:
        """Resize the CPU thread pool for ``processes`` processes on this machine (e.g. lookahead workers).

        Returns:
            The threads now set (None on a GPU)."""
        from .devices import configure_cpu_threads

        if self.device.type == "cpu":
            if threads is None and not self.timestamp:
                threads = 1
            self.threads = configure_cpu_threads(threads, processes=processes)
        return self.threads

    def load(self, options: LoadOptions | None = None) -> ProbeTarget:
        """The checkpoint's :class:`~specprobe.models.base.ProbeTarget` on this context's device.

        Args:
            options: :class:`~specprobe.models.options.LoadOptions` (None: the defaults).

        Returns:
            The family's target, on :attr:`device`.
        """
        from ..models.registry import load_target

        return load_target(self.path, options, device=self.device)

    def shard(self):
        """This rank's share of a loop: a :class:`~specprobe.probing.distributed.Shard`, or None in one process."""
        return self.world.shard() if self.world is not None else None

    @property
    def device_label(self) -> str:
        if self.device.type == "cpu":
            return str(self.device)
        import torch

        return f"{self.device} ({torch.cuda.get_device_name(self.device)})"

    def provenance(self, target: ProbeTarget, *, ema: bool = False, command_line: list[str] | None = None,
                   split: str | None = None) -> dict:
        """The provenance every result file carries.

        Args:
            target: the loaded target (its ``describe()`` and ``family``).
            ema: whether the EMA weights were loaded.
            command_line: recorded as given (default: ``sys.argv``).
            split: how a distributed run divided the work (recorded only under torchrun).

        Returns:
            {checkpoint: {path, sha256, size_bytes, family, format, ema, bundled_default}, model, device,
            cpu_threads, library_versions, command_line, [distributed], [utc_time]}.
        """
        describe = target.describe()
        path = Path(self.path)
        prov = {
            "checkpoint": {"path": str(path), "sha256": sha256_of(path), "size_bytes": path.stat().st_size,
                           "family": target.family, "format": describe.get("format", target.family), "ema": ema,
                           "bundled_default": self.bundled_default},
            "model": describe,
            "device": self.device_label,
            "cpu_threads": self.threads,
            "library_versions": library_versions(),
            "command_line": command_line if command_line is not None else list(sys.argv),
        }
        if self.world is not None and split is not None:
            prov["distributed"] = self.world.describe(split)
        if self.timestamp:
            prov["utc_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return prov
