"""Peak memory of a probe against one fme training step on the same checkpoint, each in a fresh process.

Each measurement is its own Python process (``--one probe|fme-step``) that reports the kernel's peak
resident set (VmHWM, /proc/self/status) after loading the checkpoint and after the work; both
processes import the same libraries, so the ratio compares like with like. The fme step is fme's
training forward (``TrainStepper`` order, module in train mode), fme's own ``EnsembleLoss`` StepLoss,
backward and an AdamW step, at batch 1, as the probe.

    python benchmarks/bench_memory.py CKPT [--variants 1 7] [--n-samples 2] [--n-ensemble 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def engine_of_this_checkout():
    """The engine module of the specprobe first on the path (old commits named it specprobe.probe)."""
    import importlib

    import specprobe

    old = os.path.exists(os.path.join(os.path.dirname(specprobe.__file__), "probe", "engine.py"))
    return importlib.import_module("specprobe.probe.engine" if old else "specprobe.probing.engine")


def _variants(k_minus_1: int) -> list[str]:
    return [f"per_sample:gamma={round(0.2 + 0.8 * i / max(k_minus_1 - 1, 1), 3)}" for i in range(k_minus_1)]


def measure_one(mode, checkpoint, *, variants: int, n_samples: int, n_ensemble: int, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(1)
    run_probe = engine_of_this_checkout().run_probe
    from specprobe.models.registry import load_target

    target = load_target(checkpoint, device=device)
    loaded = vm_hwm()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if mode == "probe":
        run_probe(target, variants=_variants(variants), n_samples=n_samples, n_ensemble=n_ensemble, batch_size=1)
    else:
        tensors = [p.tensor for p in target.parameters()]
        opt = torch.optim.AdamW(tensors, lr=1e-6)
        step_loss = target.fme_step_loss(crps_weight=0.9, energy_score_weight=0.1)
        for i, batch in enumerate(target.batches(None, n_samples=n_samples, batch_size=1, seed=0)):
            opt.zero_grad(set_to_none=True)
            gen, tgt = target.generate(batch, n_ensemble=n_ensemble, seed=i)
            step_loss(gen, tgt, step=0).total().backward()
            opt.step()
            del gen, tgt
    out = {"mode": mode, "loaded_bytes": loaded, "peak_bytes": vm_hwm(),
           "n_params": sum(p.tensor.numel() for p in target.parameters())}
    if device.startswith("cuda"):
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def run_fresh(mode, checkpoint, *, variants=1, n_samples=2, n_ensemble=2, device="cpu", pythonpath=None) -> dict:
    """``measure_one`` in a new interpreter; ``pythonpath`` picks which specprobe is measured."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, os.path.abspath(__file__), checkpoint, "--one", mode, "--variants", str(variants),
           "--n-samples", str(n_samples), "--n-ensemble", str(n_ensemble), "--device", device]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--one", choices=["probe", "fme-step"], help="measure one process (internal)")
    ap.add_argument("--variants", type=int, nargs="+", default=[1, 7], help="whitening variants besides the baseline (K - 1)")
    ap.add_argument("--n-samples", type=int, default=2)
    ap.add_argument("--n-ensemble", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure_one(a.one, a.checkpoint, variants=a.variants[0], n_samples=a.n_samples,
                                     n_ensemble=a.n_ensemble, device=a.device)))
        return
    step = run_fresh("fme-step", a.checkpoint, n_samples=a.n_samples, n_ensemble=a.n_ensemble, device=a.device)
    key = "cuda_peak_bytes" if a.device.startswith("cuda") else "peak_bytes"
    print(f"{a.checkpoint}: {step['n_params']:,} parameters, {a.n_samples} samples, batch 1, ensemble {a.n_ensemble}")
    print(f"fme training step   peak {step[key] / 2**30:7.2f} GiB (after load {step['loaded_bytes'] / 2**30:.2f})")
    for v in a.variants:
        probe = run_fresh("probe", a.checkpoint, variants=v, n_samples=a.n_samples, n_ensemble=a.n_ensemble, device=a.device)
        print(f"probe K = {v + 1:<2d}         peak {probe[key] / 2**30:7.2f} GiB   ratio {probe[key] / step[key]:.2f}")


if __name__ == "__main__":
    main()
