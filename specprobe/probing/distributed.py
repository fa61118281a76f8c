"""Scale-out on torch.distributed: which batches, checkpoints or arms a rank takes; sums over ranks.

A thin layer around the single-process engine, which stays single-process itself. Launched by ``torchrun``, every rank
runs the same command. For one checkpoint, rank r takes the batches whose index i has
``i % world_size == r``; the engine seeds each batch from its index alone (``seed * 1_000_003 + i``)
and every adapter builds the same batch i whichever rank asks, so the union over ranks is exactly
the single-process run. The accumulators are then summed over ranks in float64 and the per-sample
rows are gathered back into batch order, so every rank summarises the same numbers; only rank 0
prints and writes (the CLI decides that). A series spreads whole checkpoints instead.

Failure: a rank that fails joins the next *status exchange* with its error instead of the next
collective; every rank takes part in an exchange before any reduction and before anything is
written, so when one rank fails all of them raise :class:`RankFailure` ("rank R: message") at the
same point, nothing is written, and nobody waits on a peer that will never come. A rank that dies
without a word (killed, segfault) is caught by torchrun, which stops the others; the process-group
timeout (``SPECPROBE_DIST_TIMEOUT`` seconds) is the last resort against a hang.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from ..errors import SpecprobeError

TIMEOUT_ENV = "SPECPROBE_DIST_TIMEOUT"
BUCKET_ELEMENTS = 1 << 24  # 128 MB of float64 per all-reduce
# Long enough for ranks to wait on the slowest one (a series spreads whole checkpoints, so ranks
# can finish minutes apart); it only bites when a peer is gone without torchrun noticing.
DEFAULT_TIMEOUT_S = 1800.0
# Test-only fault injection: the rank named here raises when it reaches its second batch (or
# checkpoint), i.e. mid-run, after it has done real work.
TEST_FAIL_ENV = "SPECPROBE_TEST_FAIL_RANK"


class RankFailure(SpecprobeError):
    """One rank failed; raised on every rank, with the failing rank's message and exit code."""

    def __init__(self, rank: int, message: str, code: int = 1, others: tuple[int, ...] = ()):
        self.rank, self.message, self.code, self.others = rank, message, code, others
        also = (f" (rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} failed too)"
                if others else "")
        super().__init__(f"rank {rank}: {message}{also}")


def launched() -> bool:
    """True under torchrun (or any launcher setting its variables) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def env_rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SpecprobeError(f"{TIMEOUT_ENV}: expected seconds > 0, got {raw!r}")
    return value


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    local_size: int
    backend: str
    device: object  # torch.device of this rank
    timeout_s: float
    devices: list = field(default_factory=list)  # every rank's device, in rank order
    open: bool = True  # False once the ranks stop exchanging statuses (before writing, after a failure)
    broken: bool = False  # True once a collective itself failed (timeout, lost peer): no more collectives
    agreed_failure: bool = False  # True once every rank has learnt of a failure in a status exchange
    _fail_at: int | None = None  # test-only fault injection: fail on this rank's n-th taken index
    _n_taken: int = 0

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def shard(self) -> "Shard":
        """A fresh round-robin split for one loop (batches of a probe, checkpoints of a series)."""
        return Shard(self)

    def _took_one(self, index: int) -> None:
        self._n_taken += 1
        if self._fail_at is not None and self._n_taken == self._fail_at:
            raise RuntimeError(f"injected failure at index {index} ({TEST_FAIL_ENV})")

    def describe(self, split: str) -> dict:
        """Provenance: world size, backend and every rank's device."""
        return {"world_size": self.size, "backend": self.backend, "devices": list(self.devices), "split": split,
                "timeout_s": self.timeout_s}

    # ------------------------------------------------------------------ collectives
    def _collective(self, fn, *args, **kwargs):
        """Run one collective; if it fails (timeout, lost peer) no further collective is attempted."""
        if self.broken:
            raise RankFailure(self.rank, "internal: collective after the transport failed")
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any transport error ends the exchange for this rank
            self.open, self.broken = False, True
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise RankFailure(self.rank, f"lost contact with the other ranks ({first})") from e

    def gather(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        import torch.distributed as dist

        out = [None] * self.size
        self._collective(dist.all_gather_object, out, obj)
        return out

    def sum_(self, tensors, bucket_elements: int = BUCKET_ELEMENTS) -> None:
        """In-place sum over ranks of every tensor, in buckets of one dtype and device.

        One collective per bucket, not per tensor: a model has hundreds of parameters and each
        collective costs a round trip; a bucket bounds the extra memory of the flat copy.
        """
        import torch
        import torch.distributed as dist

        groups: dict = {}
        for t in tensors:
            groups.setdefault((t.dtype, t.device), []).append(t)
        for group in groups.values():
            bucket, size = [], 0
            for t in group + [None]:
                if t is not None and (size + t.numel() <= bucket_elements or not bucket):
                    bucket.append(t)
                    size += t.numel()
                    continue
                flat = torch.cat([b.reshape(-1) for b in bucket])
                self._collective(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
                offset = 0
                for b in bucket:
                    b.copy_(flat[offset: offset + b.numel()].view_as(b))
                    offset += b.numel()
                if t is not None:
                    bucket, size = [t], t.numel()

    def check(self, error: tuple[int, str] | None = None) -> None:
        """Status exchange: every rank says whether it failed; if any did, every rank raises.

        Healthy ranks call it before each reduction; a failing rank calls it once with
        ``(exit_code, message)`` from its error handler, matching the others' next exchange.
        """
        if not self.open:
            raise RankFailure(self.rank, "internal: status exchange after the ranks stopped exchanging")
        statuses = self.gather(error)
        failed = [(r, s) for r, s in enumerate(statuses) if s is not None]
        if failed:
            self.open, self.agreed_failure = False, True
            (rank, (code, message)), others = failed[0], tuple(r for r, _ in failed[1:])
            raise RankFailure(rank, message, code, others)

    def finish_exchanges(self) -> None:
        """The last exchange before writing: all ranks are healthy; no collectives after this."""
        self.check()
        self.open = False


class Shard:
    """Round robin over indices for one loop: this rank takes ``i`` when ``i % size == rank``."""

    def __init__(self, world: World):
        self.world = world
        self.taken: list[int] = []

    def takes(self, index: int) -> bool:
        w = self.world
        if index % w.size != w.rank:
            return False
        w._took_one(index)
        self.taken.append(index)
        return True

    def gather_taken(self, values: list) -> list:
        """After a status exchange: every rank's ``values`` (one per index it took) in index order."""
        w = self.world
        w.check()
        if len(values) != len(self.taken):
            raise RankFailure(w.rank, "internal: not one value per taken index")
        parts = w.gather(list(zip(self.taken, values)))
        return [v for _, v in sorted((pair for part in parts for pair in part), key=lambda iv: iv[0])]

    def sum_tensors(self, tensors) -> None:
        """After a status exchange: every tensor summed over ranks, in place."""
        self.world.check()
        self.world.sum_(list(tensors))

    # ------------------------------------------------------------------ the engine's accumulators
    def reduce_probe(self, acc, n_done: int) -> int:
        """Sum the engine's accumulators over ranks in place; per-sample rows back in batch order.

        Returns the total number of samples. After this every rank holds the single-process state.
        """
        w = self.world
        w.check()
        indices = w.gather(list(self.taken))
        order = sorted((i, r, k) for r, idx in enumerate(indices) for k, i in enumerate(idx))
        # Streamed: a bucket of moments' float64 states at a time, so the reduction never holds a
        # float64 copy of every accumulator at once (issue 11 keeps them in float32).
        pending, size = [], 0
        for m in acc.all_moments():
            state = m.reducible_state()
            pending.append((m, state))
            size += sum(t.numel() for t in state.values())
            if size >= BUCKET_ELEMENTS:
                _sum_and_load(w, pending)
                pending, size = [], 0
        if pending:
            _sum_and_load(w, pending)
        small = w.gather({"n_done": n_done, **acc.summable()})
        for name in small[0]["rows"]:
            if any(len(s["rows"][name]) != len(idx) for s, idx in zip(small, indices)):
                raise RankFailure(w.rank, f"internal: {name} holds a row count that is not one per batch")
        acc.load_summed(small, [(r, k) for _, r, k in order])
        return sum(s["n_done"] for s in small)


def _sum_and_load(world: World, pending: list) -> None:
    world.sum_([state[key] for _, state in pending for key in sorted(state)])
    for m, state in pending:
        m.load_reduced(state)


# ---------------------------------------------------------------------- the process-wide world
_WORLD: World | None = None


def current() -> World | None:
    return _WORLD


def start(device: str = "auto", *, new_command: bool = False) -> World | None:
    """Join torchrun's process group (once per process); None when not launched with > 1 process.

    ``new_command``: a command starts a new round of status exchanges on a world that is still
    intact (several commands in one process, e.g. from Python).

    Device: ``auto`` takes ``cuda:LOCAL_RANK`` with nccl when GPUs are present, else the CPU with
    gloo; ``cpu`` forces gloo; ``cuda`` forces ``cuda:LOCAL_RANK``.
    """
    global _WORLD
    if _WORLD is not None:
        if new_command and not _WORLD.broken:
            _WORLD.open = True
        return _WORLD
    if not launched():
        return None
    import datetime

    import torch
    import torch.distributed as dist

    rank, size = env_rank(), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)) or size)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise SpecprobeError(f"WORLD_SIZE={size} but {', '.join(missing)} unset: launch with torchrun")
    from .devices import resolve_device

    dev = resolve_device(device, local_rank=local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = timeout_seconds()
    kwargs = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(backend, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=timeout),
                            **kwargs)
    fail = os.environ.get(TEST_FAIL_ENV)
    world = World(rank=rank, size=size, local_rank=local_rank, local_size=local_size, backend=backend, device=dev,
                  timeout_s=timeout, _fail_at=2 if fail not in (None, "") and int(fail) == rank else None)
    _WORLD = world
    name = str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})"
    world.devices = [f"rank {r}: {d}" for r, d in enumerate(world.gather(f"{name} on {socket.gethostname()}"))]
    return world


def fail(code: int, message: str) -> RankFailure:
    """From a rank's error handler: tell the others (if they still listen) and agree on one failure."""
    w = _WORLD
    if w is None or not w.open:
        return RankFailure(w.rank if w else env_rank(), message, code)
    try:
        w.check((code, message))
    except RankFailure as agreed:
        return agreed
    return RankFailure(w.rank, message, code)  # unreachable: check() raises when a status is an error


def conclude(failure: RankFailure, say) -> None:
    """End a failed job in order: rank 0 says the one line, then the failing rank leaves first.

    ``say(line)`` prints on rank 0. The barrier keeps the failing rank alive until rank 0 has
    printed (torchrun stops the other ranks as soon as one exits non-zero). The failing rank then
    writes torchelastic's error file, and the healthy ranks linger a second, so torchrun's own
    report names the failing rank as the root cause, with the same line.
    """
    import time

    w = _WORLD
    rank = w.rank if w is not None else env_rank()
    if rank == 0:
        say(str(failure))
    if w is not None and w.agreed_failure and not w.broken:  # only then are all ranks here
        try:
            w.gather(None)  # barrier: rank 0 has printed
        except RankFailure:
            pass
    if rank == failure.rank:
        _write_elastic_error_file(str(failure))
    elif w is not None:
        time.sleep(1.0)


def _write_elastic_error_file(line: str) -> None:
    import json
    import time

    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    record = {"message": {"message": line, "extraInfo": {"py_callstack": line, "timestamp": str(int(time.time()))}}}
    try:
        with open(path, "w") as f:
            json.dump(record, f)
    except OSError:
        pass  # only torchrun's report loses the message; the job's own line was printed


def shutdown() -> bool:
    """End of the command: True when this process is a rank of a multi-process world.

    Such a process must then end with :func:`exit_rank`, not by tearing the process group down: a
    two-rank gloo lookahead once aborted in teardown ("terminate called without an active
    exception", exit -6, about 1 run in 10 on a loaded 2-core machine) after every result was
    written, and torchrun reports that as a failed job. No collective follows the last status
    exchange, so nothing is lost by leaving the group to the process's end."""
    global _WORLD
    if _WORLD is None:
        return False
    multi = _WORLD.size > 1
    _WORLD = None
    if not multi:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return multi


def exit_rank(code: int) -> None:
    """Flush and end this rank's process now, without C++ teardown of the process group's threads."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
