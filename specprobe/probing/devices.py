"""Where a command runs: the one place ``--device`` becomes a ``torch.device`` and the CPU thread pool is sized.

Used by :class:`~specprobe.probing.context.RunContext` (one process) and by
:func:`specprobe.probing.distributed.start` (under torchrun, each rank on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

from ..errors import SpecprobeError

AUTO_DEVICE_ENV = "SPECPROBE_DEVICE"


def auto_device(device: str | None) -> str:
    """What ``--device auto`` means: ``$SPECPROBE_DEVICE`` when set (e.g. ``cpu``: the test suite pins
    itself to the CPU, so seeded and byte-identical results do not move to a GPU when one is present),
    else ``auto`` (the GPU when present)."""
    import os

    want = (device or "auto").strip()
    return (os.environ.get(AUTO_DEVICE_ENV) or "auto").strip() if want == "auto" else want


def resolve_device(device: str, *, local_rank: int | None = None):
    """The ``torch.device`` that ``--device`` names; the one place devices are chosen.

    Args:
        device: ``auto`` (the GPU when present; ``$SPECPROBE_DEVICE`` overrides), ``cpu``, ``cuda``, ``cuda:i``.
        local_rank: under torchrun, this process's ``LOCAL_RANK``: each rank then takes ``cuda:LOCAL_RANK``
            (``auto``, ``cuda``) or the CPU, and an explicit ``cuda:i`` is refused.

    Returns:
        The device.

    Raises:
        SpecprobeError: an unknown name, or a GPU that is not there.
    """
    import torch

    device = auto_device(device)
    if local_rank is not None:
        if device == "cpu":
            return torch.device("cpu")
        if device not in ("auto", "cuda"):
            raise SpecprobeError(f"--device {device}: under torchrun each rank takes cuda:LOCAL_RANK; "
                                 "use --device auto, cuda or cpu")
        if not torch.cuda.is_available():
            if device == "cuda":
                raise SpecprobeError("--device cuda: no CUDA GPU is available on this machine; use --device cpu or auto")
            return torch.device("cpu")
        if local_rank >= torch.cuda.device_count():
            raise SpecprobeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) on this node")
        return torch.device("cuda", local_rank)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SpecprobeError(f"--device: expected auto, cpu or cuda[:i], got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecprobeError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SpecprobeError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) present")
    elif dev.type != "cpu":
        raise SpecprobeError(f"--device: expected auto, cpu or cuda[:i], got {device!r}")
    return dev


def configure_cpu_threads(threads: int | None = None, *, processes: int = 1) -> int:
    """Intra-op CPU threads: ``threads`` if given, else the cores not already busy (at least 1),
    shared by ``processes`` probes on this machine (torchrun's ranks on one node).

    Why: an SFNO step is thousands of small ops, and OpenMP threads spin at every op's barrier. With
    one of two cores busy elsewhere, 2 threads made the default probe 22x slower than 1 thread
    (299 s vs 13.4 s measured here); sizing to the idle cores keeps the probe fast on a shared box.
    """
    import os

    import torch

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: expected an integer >= 1, got {threads}")
        n = threads
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        n = max(1, min(cores, int(cores - busy + 0.5)) // max(processes, 1))
    torch.set_num_threads(n)
    return n
