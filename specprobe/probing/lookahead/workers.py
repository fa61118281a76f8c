"""Worker processes that share a sweep's arms on the CPU (``--workers``); results do not depend on them."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict

from ...errors import SpecprobeError
from ...spectral import WhiteningConfig
from .config import LookaheadSettings
from .training import ArmRunner, _Band

# ------------------------------------------------------------------ worker processes


def _pools_digest(train_pool, eval_pool) -> str:
    h = hashlib.sha256()
    for pool in (train_pool, eval_pool):
        for pair in pool.state_keys:
            h.update(repr(pair).encode())
        h.update(b"|")
    return h.hexdigest()


class WorkerPool:
    """Arms shared by this process and ``n - 1`` spawned workers (each rebuilds the target and pools from
    the same arguments, checked identical by the pools' state fingerprints), all pulling arm indices
    from one queue, so a slow process takes fewer arms.

    ``spec``: what a worker needs to rebuild (checkpoint, device, pool and rollout arguments)."""

    def __init__(self, n: int, threads: int, spec: dict, digest: str):
        self.n, self.threads, self.spec, self.digest = n, threads, spec, digest
        self.procs, self.tasks, self.results = [], None, None
        self.worker_cpu = []

    def start(self, configs, settings, loss, bands):
        """Spawn the n - 1 workers now: they import and load while this process scores the checkpoint."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited OpenMP or torch thread state
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        job = {**self.spec, "variants": [c.to_dict() for c in configs], "settings": asdict(settings), "loss": loss,
               "bands": [asdict(b) for b in bands], "threads": self.threads, "digest": self.digest}
        self.procs = [ctx.Process(target=_worker_main, args=(job, self.tasks, self.results), daemon=True)
                      for _ in range(self.n - 1)]
        with _main_module_hidden():
            for p in self.procs:
                p.start()

    def collect(self, indices, progress=None, local_run=None) -> list[dict]:
        """Every arm in ``indices``: this process runs ``local_run(i)`` for the indices it pulls first."""
        import queue

        for i in indices:
            self.tasks.put(i)
        for _ in self.procs:
            self.tasks.put(None)
        out = {}

        def take(msg):
            if msg[0] == "error":
                raise SpecprobeError(msg[1])
            if msg[0] == "done":
                self.worker_cpu.append(round(msg[1], 3))
                return
            out[msg[1]] = msg[2]
            if progress is not None:
                progress(len(out), len(indices))

        try:
            while local_run is not None:
                try:
                    i = self.tasks.get(timeout=1.0)
                except queue.Empty:
                    break
                if i is None:  # a worker's stop sign: put it back, every index is taken
                    self.tasks.put(None)
                    break
                out[i] = local_run(i)
                if progress is not None:
                    progress(len(out), len(indices))
                while True:  # what the workers finished meanwhile (and their failures, early)
                    try:
                        take(self.results.get_nowait())
                    except queue.Empty:
                        break
            while len(out) < len(indices):
                try:
                    msg = self.results.get(timeout=1.0)
                except queue.Empty:
                    dead = [p.exitcode for p in self.procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise SpecprobeError(f"a lookahead worker process ended with exit code {dead[0]} "
                                             "(out of memory?); rerun with --workers 1") from None
                    continue
                take(msg)
            deadline = time.perf_counter() + 10  # the workers' CPU reports, sent just after their last arm
            while len(self.worker_cpu) < len(self.procs) and time.perf_counter() < deadline:
                try:
                    take(self.results.get(timeout=0.5))
                except queue.Empty:
                    if all(p.exitcode is not None for p in self.procs):
                        break
        finally:
            self.close()
        return [out[i] for i in indices]

    def close(self):
        for p in self.procs:
            if p.pid is None:  # never started
                continue
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)

    def describe(self) -> dict:
        return {"processes": self.n, "threads_per_process": self.threads, "worker_cpu_s": self.worker_cpu,
                "split": "this process and n - 1 spawned workers pull arm indices from one queue; each arm seeded "
                         "from its repeat alone, so the arms equal a one-process run with the same threads per process"}


class _main_module_hidden:
    """Spawned workers need only specprobe: hide the caller's ``__main__`` from multiprocessing's
    preparation so that a script without an ``if __name__ == "__main__"`` guard is not re-run in
    every worker (the worker function and everything it unpickles live in specprobe)."""

    def __enter__(self):
        import sys

        self.main = sys.modules.get("__main__")
        self.saved = {k: self.main.__dict__[k] for k in ("__file__", "__spec__") if k in self.main.__dict__}
        self.main.__dict__.pop("__file__", None)
        self.main.__dict__["__spec__"] = None
        return self

    def __exit__(self, *exc):
        self.main.__dict__.pop("__spec__", None)
        self.main.__dict__.update(self.saved)
        return False


def _worker_main(job: dict, tasks, results):
    """One worker process: rebuild the target and pools, then train the arms it pulls from ``tasks``."""
    try:
        import torch

        from ...models.registry import load_target

        torch.set_num_threads(job["threads"])
        torch.manual_seed(job["settings"]["seed"])
        target = load_target(job["checkpoint"], job["options"], device=torch.device(job["device"]))
        train_pool, eval_pool = target.lookahead_pools(job["data"], job["train_data"], **job["pool_kwargs"])
        if _pools_digest(train_pool, eval_pool) != job["digest"]:
            raise SpecprobeError("a worker process read other training/evaluation pairs than the main process "
                                 "(data changed while running?); rerun with --workers 1")
        rollout = None
        if job.get("rollout") is not None:
            from ..rollout_health import RolloutSettings, build_rollout_set

            rs = RolloutSettings(**job["rollout"]["settings"])
            rollout = {"settings": rs, "set": build_rollout_set(target, job["rollout"]["data"], settings=rs,
                                                                cache_dir=job["pool_kwargs"].get("cache_dir"),
                                                                avoid=(train_pool,))}
        st = job["settings"]
        settings = LookaheadSettings(**{**st, "eval_steps": tuple(st["eval_steps"]) if st["eval_steps"] else None})
        runner = ArmRunner(target, train_pool, eval_pool, [WhiteningConfig(**v) for v in job["variants"]], settings,
                           job["loss"], target.training_recipe().get("optimizer"),
                           bands=[_Band(**b) for b in job["bands"]], rollout=rollout)
        while True:
            i = tasks.get()
            if i is None:
                break
            results.put(("arm", i, runner.run(i)))
        results.put(("done", time.process_time()))  # this worker's CPU seconds, start-up included
    except BaseException as e:  # noqa: BLE001 - reported to the main process as one line
        from ...errors import SpecprobeError as _E

        msg = str(e) if isinstance(e, (_E, ValueError)) else f"worker: unexpected {type(e).__name__}: {e}"
        results.put(("error", msg))


def default_workers(device_type: str, n_runs: int, distributed: bool) -> int:
    """CPU: one process per core this process may use (at most one per arm); GPU or torchrun: 1."""
    import os

    if device_type != "cpu" or distributed:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_runs))
