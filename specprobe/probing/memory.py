"""Will this probe fit? An estimate before the big allocations, and a one-line refusal when it cannot.

What a probe adds to memory once the checkpoint is loaded (weights and transform tables are then
already resident, so the free memory reported after loading excludes them):
  accumulators  K variants x (a float32 running mean, 4 bytes per element; non-spectral parameters
                4 more for their float32 M2; per-degree parameters 16 more per element that keeps a
                second moment (a float64 Welford mean and M2): every element, or a seeded sample)
  gradients     one set of parameter gradients (a backward's output)
  graph         what the first batch's forward leaves allocated (no extra forward: the real one is
                measured), times a backward factor: a backward holds the graph plus the gradients of
                the activations it is walking through.
The first check runs before any forward (accumulators and gradients are known from the parameters
alone); the second after the first batch's forward, when the graph's size is known and before the
accumulators exist. ``SPECPROBE_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) overrides the free
memory, to test the refusal or to keep a run under a budget on a shared machine.
"""

from __future__ import annotations

import os

from ..errors import SpecprobeError

# Activation gradients during a backward, relative to the graph (measured 0.37-0.57 on CPU: benchmarks/RESULTS.md).
BACKWARD_FACTOR = 0.75
HEADROOM = 0.9  # of the free memory: the allocator's fragmentation, the OS, small tensors


def memory_limit_bytes(device) -> int:
    """Free memory for this run: ``SPECPROBE_MEMORY_LIMIT`` if set, else the device's free memory."""
    from ..models.resources import available_bytes

    text = os.environ.get("SPECPROBE_MEMORY_LIMIT", "").strip()
    if text:
        scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        unit = text[-1].upper()
        try:
            return int(float(text[:-1]) * scale[unit]) if unit in scale else int(float(text))
        except ValueError:
            raise SpecprobeError(f"SPECPROBE_MEMORY_LIMIT: expected bytes such as 8G or 500M, got {text!r}") from None
    return available_bytes(device)


def accumulator_bytes(params, n_variants: int, samples: dict | None = None) -> int:
    """Bytes of K variants' accumulators: a float32-or-wider mean per element, and the second moment
    at every element or, for a parameter in ``samples`` ({index: ElementSample}), at its sampled
    ones; plus the sample indices, which every variant shares."""
    total, shared = 0, 0
    for i, p in enumerate(params):
        elements = p.tensor.numel() * (2 if p.tensor.is_complex() else 1)
        width = max(p.tensor.element_size() // (2 if p.tensor.is_complex() else 1), 4)
        sample = (samples or {}).get(i)
        kept = sample.index.numel() if sample is not None else elements
        # the mean, and the spread (the optimizer view needs every parameter's): float64 Welford pairs
        # for per-degree parameters (their GSNR), the mean's own width otherwise
        total += elements * width + (kept * 16 if p.degree_axis is not None else elements * width)
        if sample is not None:
            shared += sample.index.numel() * sample.index.element_size()
    return total * n_variants + shared


def gradient_bytes(params) -> int:
    return sum(p.tensor.numel() * p.tensor.element_size() for p in params)


class GraphSizer:
    """Memory a forward leaves allocated (its graph and outputs): allocator bytes on CUDA, the C heap's
    bytes in use on CPU (glibc ``mallinfo2``; resident set growth where that is missing). Measured as a
    difference, not with saved-tensors hooks, so that a caller's own hooks (tests/test_graph_memory.py
    meters the graphs that way) keep seeing every graph.

    Why not the resident set alone: memory freed by an earlier run stays resident and is reused, so a
    second forward grew it by 7.8 MiB where 76 MiB were allocated (measured), and the check passed a graph
    that could not fit."""

    def __init__(self, device):
        self.device, self.bytes = device, 0

    def _now(self) -> int:
        if str(self.device).startswith("cuda"):
            import torch

            return int(torch.cuda.memory_allocated(self.device))
        heap = _heap_in_use()
        if heap is not None:
            return heap
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # no /proc: no measurement, the check then covers accumulators and gradients
            return 0

    def __enter__(self):
        self._start = self._now()
        return self

    def __exit__(self, *exc):
        self.bytes = max(self._now() - self._start, 0)


_MALLINFO2 = []  # [function or None], resolved once


def _heap_in_use() -> int | None:
    """Bytes the C heap has handed out (small blocks + mmapped large ones: torch's CPU tensors), or None
    where glibc's ``mallinfo2`` (2.33+) is not there (macOS, musl, an older glibc).

    ``mallinfo2`` sees the main arena and every mmapped block, not other threads' arenas: right for the
    forward, whose tensors the calling (main) thread allocates."""
    if not _MALLINFO2:
        import ctypes

        class _Mallinfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                             "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        try:
            fn = ctypes.CDLL(None).mallinfo2
            fn.restype, fn.argtypes = _Mallinfo2, []
        except (OSError, AttributeError):
            fn = None
        _MALLINFO2.append(fn)
    fn = _MALLINFO2[0]
    if fn is None:
        return None
    info = fn()
    return int(info.uordblks + info.hblkhd)


def check_fits(*, device, params, n_variants: int, batch_size: int, n_ensemble: int, graph_bytes: int | None = None,
               samples: dict | None = None) -> None:
    """Raise SpecprobeError (one line, with options) if the probe's estimate exceeds the free memory."""
    parts = {"accumulators": accumulator_bytes(params, n_variants, samples), "gradients": gradient_bytes(params)}
    if graph_bytes is not None:
        parts["backward"] = int(BACKWARD_FACTOR * graph_bytes)
    need, free = sum(parts.values()), memory_limit_bytes(device)
    if need <= HEADROOM * free:
        return
    where = "GPU memory" if str(device).startswith("cuda") else "RAM"
    detail = ", ".join(f"{k} {_size(v)}" for k, v in parts.items())
    options = [f"fewer variants (each adds {_size(parts['accumulators'] // n_variants)})",
               "--moment-elements 1024 (variances at fewer elements)"]
    if batch_size > 1:
        options.insert(0, "--batch-size 1")
    if n_ensemble > 2:
        options.append("--n-ensemble 2")
    if str(device).startswith("cuda"):
        options.append("--device cpu")
    raise SpecprobeError(
        f"this probe needs about {_size(need)} more ({detail}; K = {n_variants} variants, batch {batch_size}, "
        f"ensemble {n_ensemble}) but only {_size(free)} of {where} is free; try " + ", ".join(options))


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
