"""A longer whitening A/B on the bundled model: does a short ``specprobe lookahead`` predict it?

    python examples/whitening_ab.py                       # 150 steps x 2 arms x 3 seeds, writes whitening_ab.json
    python examples/whitening_ab.py --steps 300 --seeds 0,1,2,3 --out /tmp/ab.json
    python examples/whitening_ab.py --seeds 1 --out s1.json   # one seed per process (a busy shared box),
    python examples/whitening_ab.py --merge s0.json s1.json s2.json --out whitening_ab.json   # then merge
    python examples/whitening_ab.py --checkpoint bundled:noisy --gammas 0.2,0.5,0.8,1 --seeds 0 --out n0.json
                                                          # a gamma sweep (every gamma an arm) on the noisy model

Each seed fine-tunes the bundled shallow-water SFNO from its checkpoint twice -- baseline loss and
whitened loss (gamma 0.5) -- with the run's own recipe (0.9 CRPS + 0.1 energy score, ensemble of 2,
Adam at the run's final learning rate), on a larger pool of fresh shallow-water pairs than the
lookahead's default (60 pairs from 12 trajectories the run never saw), the same batches and noise in
both arms of a seed, other batches and noise across seeds. Both arms are scored per degree on the
bundled held-out pairs at a few intermediate steps and at the end. The seed-to-seed spread of the
(whitened - baseline) difference is the noise level of the A/B itself.

It is the lookahead's own training loop (specprobe.probing.lookahead), run longer, on more data and
more seeds; docs/lookahead.md compares its numbers with a default ``specprobe lookahead``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=60)
    ap.add_argument("--whitening", default="per_sample:gamma=0.5")
    ap.add_argument("--gammas", default=None, help="A gamma sweep: one whitened arm per gamma (eps_frac 0.02), "
                    "e.g. 0.2,0.5,0.8,1 (gamma 0 is the baseline arm, always run); overrides --whitening.")
    ap.add_argument("--checkpoint", default=None, help="Checkpoint or bundled name (default: bundled, the "
                    "noise-free model; bundled:noisy: the model whose small scales are noise).")
    ap.add_argument("--rollout-steps", type=int, default=0, help="Also roll the checkpoint and every arm out "
                    "this many steps from 4 held-out states (rollout health); 0: off.")
    ap.add_argument("--eval-steps", default="10,50")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path("whitening_ab.json"))
    ap.add_argument("--merge", nargs="+", type=Path, help="Combine the runs of earlier outputs; train nothing.")
    ap.add_argument("--figure", type=Path, help="With --merge: per-degree figure of the A/B's final difference.")
    ap.add_argument("--short", type=Path, help="With --figure: a lookahead.json to overlay (scaled by steps).")
    a = ap.parse_args(argv)
    if a.merge:
        merge(a.merge, a.out)
        if a.figure:
            plot(json.loads(a.out.read_text()), a.figure, json.loads(a.short.read_text()) if a.short else None)
        return 0

    from specprobe.models.registry import load_target
    from specprobe.probing.engine import configure_cpu_threads
    from specprobe.probing.lookahead import LookaheadSettings, run_lookahead
    from specprobe.probing.result import json_safe
    from specprobe.report.files import write_json

    configure_cpu_threads(a.threads)
    t_start = time.time()
    target = load_target(a.checkpoint)
    train_pool, eval_pool = target.lookahead_pools(n_train=a.n_train, cache_dir=a.cache_dir)
    variants = ([f"per_sample:gamma={g.strip()}" for g in a.gammas.split(",") if g.strip()] if a.gammas
                else [a.whitening])
    rollout = None
    if a.rollout_steps:
        from specprobe.probing.rollout_health import RolloutSettings, build_rollout_set

        rs = RolloutSettings(steps=a.rollout_steps)
        rollout = {"settings": rs, "set": build_rollout_set(target, None, settings=rs, cache_dir=a.cache_dir,
                                                            avoid=[train_pool])}
    print(f"data: {train_pool.size} training pairs, {eval_pool.size} held-out pairs "
          f"({time.time() - t_start:.0f} s)", flush=True)
    eval_steps = tuple(int(x) for x in a.eval_steps.split(",") if x.strip())
    runs = []
    for seed in (int(x) for x in a.seeds.split(",")):
        t0 = time.time()
        s = LookaheadSettings(steps=a.steps, batch_size=a.batch_size, repeats=0, seed=seed)
        r = run_lookahead(target, train_pool, eval_pool, variants=variants, settings=s, eval_steps=eval_steps,
                          **({"rollout": rollout} if rollout is not None else {}))
        runs.append(r)
        t = r["table"]
        for arm in (x["name"] for x in r["arms"][1:]):
            print(f"seed {seed}: {time.time() - t0:.0f} s; {arm} - baseline (rel. to checkpoint), energy score "
                  + ", ".join(f"{b}: {t['energy_score'][b]['arms'][arm]['vs_baseline']:+.2%}" for b in t["energy_score"]),
                  flush=True)
    summary = summarise(runs, eval_steps + (a.steps,))
    out = {"schema": "specprobe.whitening-ab/1", "settings": vars(a) | {"out": str(a.out), "variants": variants},
           "summary": summary, "runs": runs, "wall_time_s": round(time.time() - t_start, 1),
           "machine": f"{a.threads} torch thread(s)"}
    write_json(a.out, json_safe(out))
    print(json.dumps(json_safe(summary), indent=1)[:4000])
    print(f"wrote {a.out} in {time.time() - t_start:.0f} s")
    return 0


def merge(paths, out) -> int:
    from specprobe.probing.result import json_safe, from_json_safe
    from specprobe.report.files import write_json

    parts = [json.loads(Path(p).read_text()) for p in paths]
    runs = [r for part in parts for r in from_json_safe(part["runs"])]
    settings = parts[0]["settings"]
    steps = tuple(int(x) for x in settings["eval_steps"].split(",") if x.strip()) + (settings["steps"],)
    summary = summarise(runs, steps)
    merged = {"schema": "specprobe.whitening-ab/1", "settings": {**settings, "seeds": ",".join(p["settings"]["seeds"] for p in parts)},
              "summary": summary, "runs": runs, "wall_time_s": [p["wall_time_s"] for p in parts],
              "machine": parts[0]["machine"], "merged_from": [str(p) for p in paths]}
    write_json(out, json_safe(merged))
    print(json.dumps(json_safe(summary), indent=1)[:4000])
    print(f"wrote {out}")
    return 0


def plot(ab: dict, path, short: dict | None) -> None:
    """Per degree (l >= 1): (whitened - baseline) / checkpoint after the A/B's last step, mean over seeds (range
    shaded when one arm), per whitened arm; a short lookahead's difference times (A/B steps / its steps) on top:
    linear extrapolation."""
    import numpy as np

    from specprobe.report.figures import _COLORS, add_km_axis, new_figure, save_figure

    metrics = (("energy_score", "energy score (unwhitened)"), ("mse", "ensemble-mean squared error"),
               ("power_ratio", "power ratio pred/target"))
    fig, axes = new_figure(1, 3, figsize=(15.5, 4.4))
    n_steps = ab["settings"]["steps"]
    names = [a["name"] for a in ab["runs"][0]["arms"][1:]]
    for ax, (m, title) in zip(axes, metrics):
        for i, name in enumerate(names):
            diffs = []
            for r in ab["runs"]:
                before = np.asarray(r["before"]["per_degree"]["overall"][m], dtype=float)[1:]
                arms = {a["name"]: np.asarray(a["per_degree"]["overall"][m], dtype=float)[1:] for a in r["arms"]}
                diffs.append(100 * (arms[name] - arms[r["arms"][0]["name"]]) / np.abs(before))
            diffs = np.asarray(diffs)
            ell = np.arange(1, diffs.shape[1] + 1)
            color = _COLORS[(i + 1) % len(_COLORS)]
            if len(names) == 1:
                ax.fill_between(ell, diffs.min(0), diffs.max(0), color=color, alpha=0.3, lw=0)
            ax.plot(ell, diffs.mean(0), color=color, lw=1.5,
                    label=f"{name.replace('per_sample', 'ps')}, {n_steps} steps ({len(diffs)} seeds)")
        if short is not None:
            k = short["settings"]["steps"]
            before = np.asarray(short["before"]["per_degree"]["overall"][m], dtype=float)[1:]
            per = {a["name"]: np.asarray(a["per_degree"]["overall"][m], dtype=float)[1:] for a in short["arms"]}
            for i, name in enumerate(names):
                # the lookahead's arm of the same name, paired with its baseline in every batch order, averaged
                diffs = [per[f"{name}{tag}"] - per[f"baseline{tag}"] for tag in
                         [""] + [f"#repeat{r}" for r in range(1, 100)] if f"{name}{tag}" in per and f"baseline{tag}" in per]
                if not diffs:
                    continue
                ax.plot(np.arange(1, before.size + 1), 100 * np.mean(diffs, axis=0) / np.abs(before) * n_steps / k,
                        color=_COLORS[(i + 1) % len(_COLORS)], lw=1.0, ls="--",
                        label=f"lookahead {name.replace('per_sample', 'ps')}, {k} steps ({len(diffs)} orders), "
                              f"x{n_steps / k:g}" if len(names) == 1 or i == len(names) - 1 else None)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("degree l")
        ax.set_ylabel("whitened − baseline, % of the checkpoint's value at l")
        ax.set_title(title, fontsize=10)
        add_km_axis(ax)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    save_figure(fig, path, "png")


def summarise(runs: list[dict], steps: tuple) -> dict:
    """Per metric, band and step: mean and seed-to-seed std of each arm's change and of (whitened - baseline).

    The first whitened arm's numbers sit at the top level of each step (as with one arm); with several
    arms (``--gammas``), ``arms`` holds every whitened arm's, by name."""
    import numpy as np

    base = runs[0]["arms"][0]["name"]
    names = [a["name"] for a in runs[0]["arms"][1:]]
    out = {}
    for m, per_band in runs[0]["before"]["bands"].items():
        out[m] = {}
        for band in per_band:
            row = {"checkpoint": per_band[band]["overall"]}
            for k in steps:
                per_arm = {}
                for arm in names:
                    diffs, b_changes, w_changes = [], [], []
                    for r in runs:
                        ref = r["before"]["bands"][m][band]["overall"]
                        vals = {}
                        for a in r["arms"]:
                            bands = a["bands"] if k == steps[-1] else a["intermediate"][str(k)]
                            vals[a["name"]] = bands[m][band]["overall"]
                        diffs.append((vals[arm] - vals[base]) / abs(ref))
                        b_changes.append((vals[base] - ref) / abs(ref))
                        w_changes.append((vals[arm] - ref) / abs(ref))
                    per_arm[arm] = {"whitened_minus_baseline": float(np.mean(diffs)),
                                    "seed_std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                                    "per_seed": diffs, "baseline_vs_checkpoint": float(np.mean(b_changes)),
                                    "whitened_vs_checkpoint": float(np.mean(w_changes))}
                row[f"step {k}"] = dict(per_arm[names[0]], **({"arms": per_arm} if len(names) > 1 else {}))
            out[m][band] = row
    return out


if __name__ == "__main__":
    sys.exit(main())
