"""``THSFNOTarget``: a torch-harmonics SFNO checkpoint as the probe engine sees it (a ProbeTarget)."""

from __future__ import annotations

from ...errors import DataError
from ..base import Batch, SpectralParam
from .format import FAMILY, FORMAT, FORMAT_VERSION, SFNO_CLASS, SPECTRAL_LAYOUT, sample_path_for


class THSFNOTarget:
    family = FAMILY
    loss_grid = "legendre-gauss"  # fme computes its energy score on a Legendre-Gauss SHT

    def __init__(self, spec, model, *, device="cpu"):
        import torch

        self.spec, self.model = spec, model
        self.device = torch.device(device)
        self.channel_names = list(spec.channel_names)
        self.nlat, self.nlon = spec.grid["nlat"], spec.grid["nlon"]
        self.data_grid = spec.grid["type"]
        n = len(self.channel_names)
        means = spec.means if spec.means is not None else [0.0] * n
        stds = spec.stds if spec.stds is not None else [1.0] * n
        self._mean = torch.tensor(means, dtype=torch.float32).view(n, 1, 1)
        self._std = torch.tensor(stds, dtype=torch.float32).view(n, 1, 1)
        self._params = None
        self._last_source = None  # "synthetic", "bundled" or the data path of the last batches() call

    @property
    def deterministic(self) -> bool:
        """No noise and no dropout: every ensemble member is the same field, the spread term is zero."""
        st, args = self.spec.stochastic or {}, self.spec.args
        return (not st.get("n_noise") and not args.get("drop_rate", 0.0) and not args.get("drop_path_rate", 0.0))

    # -- parameters -------------------------------------------------------------------------
    def parameters(self) -> list[SpectralParam]:
        if self._params is None:
            self._params = [
                SpectralParam(name, p, 2, SPECTRAL_LAYOUT) if name.endswith("global_conv.weight")
                else SpectralParam(name, p, None)
                for name, p in self.model.sfno.named_parameters() if p.requires_grad
            ]
        return self._params

    def describe(self) -> dict:
        s = self.spec
        params = self.parameters()
        n_real = sum(p.tensor.numel() * (2 if p.tensor.is_complex() else 1) for p in params)
        if not s.plain:
            fmt = FORMAT
        elif s.sidecar:
            fmt = "torch-harmonics state dict + JSON sidecar"
        else:
            fmt = "torch-harmonics state dict (constructor inferred from the weights)"
        return {
            "format": fmt,
            "format_version": None if s.plain else FORMAT_VERSION,
            "class": SFNO_CLASS,
            "constructor_args": dict(s.args),
            "stochastic": s.stochastic,
            "grid": {"nlat": self.nlat, "nlon": self.nlon, "data_grid": self.data_grid, "loss_grid": self.loss_grid},
            "internal_degrees": int(self.model.sfno.blocks[0].global_conv.modes_lat),
            "channels": [{"name": c, "units": u, "long_name": ln}
                         for c, u, ln in zip(s.channel_names, s.units, s.long_names)],
            "normalization": None if s.means is None else {
                "means": list(s.means), "stds": list(s.stds),
                "loss_space": "(x - mean) / std per channel; the model reads and writes this space"},
            "parameter_count": {"tensors": len(params), "real_values": n_real},
            "spectral_parameters": [p.describe() for p in params if p.per_degree],
            "training": s.training,
            "sidecar": s.sidecar,
            "container": s.container,
            "constructor_inference": s.inference,
            "deterministic": self.deterministic,
            "data_source": self._last_source,
            "synthetic_data": self._last_source == "synthetic",
            "notes": list(s.notes),
        }

    def optimizer_settings(self):
        """The training optimizer from the checkpoint's training metadata (torch defaults where unrecorded)."""
        from ..base import OptimizerSettings

        opt = (self.spec.training or {}).get("optimizer") if isinstance(self.spec.training, dict) else None
        if not isinstance(opt, dict) or not opt.get("name"):
            return OptimizerSettings()
        name = str(opt["name"])
        recorded = [k for k in ("eps", "betas") if k in opt]
        eps = float(opt.get("eps", 1e-8))
        betas = tuple(opt["betas"]) if "betas" in opt else ((0.9, 0.999) if name.lower().startswith("adam") else None)
        source = "checkpoint training metadata (optimizer name, lr" + "".join(f", {k}" for k in recorded) + ")"
        if len(recorded) < 2 and name.lower().startswith("adam"):
            source += "; unrecorded eps/betas: torch defaults"
        return OptimizerSettings(name=name, eps=eps, betas=betas, lr=opt.get("lr"), source=source)

    # -- data -------------------------------------------------------------------------------
    def load_pairs(self, data=None):
        """All (input, target) pairs of a data file (None: the bundled sample) in loss space, + info."""
        from .data import load_pairs

        path = self.default_sample() if data is None else data
        x, y, info = load_pairs(path)
        names = info["channel_names"]
        if self.spec.plain:  # names unknown: match by count
            if len(names) != len(self.channel_names):
                raise DataError(f"{path}: {len(names)} channels but the model has {len(self.channel_names)}")
        else:
            if sorted(names) != sorted(self.channel_names):
                raise DataError(f"{path}: channels {names} do not match the model's {self.channel_names}")
            order = [names.index(c) for c in self.channel_names]
            x, y = x[:, order], y[:, order]
        grid = info["grid"]
        if (grid["nlat"], grid["nlon"], grid["type"]) != (self.nlat, self.nlon, self.data_grid):
            raise DataError(f"{path}: data grid {grid['nlat']}x{grid['nlon']} {grid['type']} does not match the "
                            f"model's {self.nlat}x{self.nlon} {self.data_grid}")
        return self.normalize(x), self.normalize(y), info

    def normalize(self, x):
        return (x - self._mean) / self._std

    def denormalize(self, x):
        return x * self._std.to(x.device) + self._mean.to(x.device)

    def default_sample(self):
        """The held-out sample probed without --data: a bundled model's own, else the default bundled one."""
        return sample_path_for(getattr(self.spec, "path", None))

    def _bundled_sample_fits(self) -> bool:
        """The bundled shallow-water sample serves models with its channels and grid (the bundled model)."""
        if self.spec.plain:
            return False
        from .data import load_pairs

        info = load_pairs(self.default_sample())[2]
        grid = info["grid"]
        return (sorted(info["channel_names"]) == sorted(self.channel_names)
                and (grid["nlat"], grid["nlon"], grid["type"]) == (self.nlat, self.nlon, self.data_grid))

    def synthetic_pairs(self, n: int, seed: int):
        """(inputs, targets) in loss space: seeded unit-variance red fields (power ~ l^-2, zero mean) on the
        model's data grid, and the target one step away (input + 0.5 x an independent red field), as the
        fme family makes them; in physical units that is mean + std * z where the checkpoint normalises."""
        import torch

        from ..synthetic import red_fields

        g = torch.Generator().manual_seed(int(seed))
        shape = (n, len(self.channel_names), self.nlat, self.nlon, self.data_grid)
        x = red_fields(*shape, g)
        return x, x + 0.5 * red_fields(*shape, g)

    def batches(self, data, *, n_samples: int, batch_size: int, seed: int):
        """The first ``n_samples`` pairs in file order, in batches (``seed`` unused: order is fixed); with
        ``data=None``, the bundled sample where it fits the model, else seeded synthetic fields."""
        if n_samples < 1 or batch_size < 1:
            raise ValueError(f"n_samples, batch_size: expected >= 1, got {n_samples}, {batch_size}")
        if data is None and not self._bundled_sample_fits():
            self._last_source = "synthetic"
            x, y = self.synthetic_pairs(n_samples, seed)
            info = {"pair_ids": [(i, 0) for i in range(n_samples)]}
        else:
            self._last_source = "bundled" if data is None else str(data)
            x, y, info = self.load_pairs(data)
        if x.shape[0] < n_samples:
            src = "the bundled sample" if data is None else str(data)
            raise DataError(f"{src}: holds {x.shape[0]} input/target pairs, fewer than n_samples={n_samples}")
        for start in range(0, n_samples, batch_size):
            stop = min(start + batch_size, n_samples)
            yield Batch(payload={"input": x[start:stop], "target": y[start:stop]}, size=stop - start,
                        meta={"pairs": info["pair_ids"][start:stop], "first_index": start})

    # -- the training forward -----------------------------------------------------------------
    def forward(self, batch: Batch, *, n_ensemble: int, seed: int):
        """gen (B, E, C, H, W), target (B, 1, C, H, W) in loss space; row s*E + e is member e of sample s."""
        import torch

        if n_ensemble < 1:
            raise ValueError(f"n_ensemble: expected >= 1, got {n_ensemble}")
        x = batch.payload["input"].to(self.device)
        y = batch.payload["target"].to(self.device)
        b = x.shape[0]
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        if self.deterministic and n_ensemble > 1:
            # Every member is the same field: compute it once and repeat it. Running E identical rows
            # through the network gives identical bits only where the kernels treat every batch row
            # alike (not guaranteed across BLAS builds and GPUs), and a one-ulp difference turns the
            # spread term's zero gradient into an O(1) one (|x1 - x2| has slope +-1 off its kink).
            gen = self.model(x, generator)
            return gen[:, None].expand(b, n_ensemble, *gen.shape[1:]), y[:, None]
        gen = self.model(x.repeat_interleave(n_ensemble, dim=0), generator)
        return gen.reshape(b, n_ensemble, *gen.shape[1:]), y[:, None]

    def persistence(self, batch: Batch):
        """The persistence reference x (B, 1, C, H, W) in loss space: the input state (the model is residual,
        next = state + SFNO(state, noise), so the change it predicts is measured from here)."""
        return batch.payload["input"].to(self.device)[:, None]

    # -- training (what `specprobe lookahead` fine-tunes) ----------------------------------------
    def trainable_module(self):
        """The module a fine-tune updates: the whole stochastic SFNO (noise transform has no weights)."""
        return self.model

    def training_recipe(self) -> dict:
        """How the checkpoint says it was trained: loss weights, ensemble size, optimizer (no state)."""
        tr = self.spec.training or {}
        loss, opt = tr.get("loss") or {}, tr.get("optimizer") or {}
        recipe_loss = None
        if "crps_weight" in loss or "energy_score_weight" in loss:
            recipe_loss = {"crps_weight": float(loss.get("crps_weight", 0.0)),
                           "energy_score_weight": float(loss.get("energy_score_weight", 1.0)),
                           "n_ensemble": loss.get("n_ensemble"), "source": "checkpoint training metadata"}
        optimizer = {"type": opt.get("name"), "lr": None, "hyper": {}, "state": None,
                     "source": "not recorded in the checkpoint"}
        if opt.get("lr") is not None:
            lr, note = float(opt["lr"]), "the run's recorded lr"
            if "cosine" in str(opt.get("schedule", "")) and opt.get("lr_final_frac") is not None:
                # The checkpoint is the end of its schedule: continuing it means the final lr, not the peak.
                lr, note = lr * float(opt["lr_final_frac"]), (f"the run's final lr: peak {opt['lr']:g} x lr_final_frac "
                                                              f"{opt['lr_final_frac']:g} ({opt['schedule']})")
            optimizer.update(lr=lr, source=f"checkpoint training metadata; lr = {note}; betas/eps not recorded "
                                           "(torch defaults); no optimizer state stored (fresh moments)")
        return {"loss": recipe_loss, "optimizer": optimizer}

    def lookahead_pools(self, data=None, train_data=None, *, n_train: int | None = None, n_eval: int | None = None,
                        seed: int = 0, cache_dir=None):
        """(training pool, evaluation pool). Evaluation: ``data`` (default: the bundled held-out pairs).

        Training: ``train_data`` (a data file; its first ``n_train`` pairs, default all), or ``n_train``
        (default 20) fresh shallow-water pairs from the run's own recipe (specprobe/models/th/swe.py with
        the checkpoint's recorded data config), seeded and cached. ``seed`` does not change the data.
        """
        if n_train is not None and n_train < 1:
            raise DataError(f"--n-train {n_train}: expected at least 1 training pair")
        hx, hy, _ = self.load_pairs(data)
        if n_eval is not None:
            if n_eval < 1 or n_eval > hx.shape[0]:
                raise DataError(f"--n-eval {n_eval}: the evaluation data holds {hx.shape[0]} pairs")
            hx, hy = hx[:n_eval], hy[:n_eval]
        eval_pool = self._pool(hx, hy, {"source": "bundled held-out sample" if data is None else str(data),
                                        "pairs": int(hx.shape[0])})
        if train_data is not None:
            tx, ty, _ = self.load_pairs(train_data)
            desc = {"source": str(train_data), "pairs": int(tx.shape[0])}
        else:
            path, desc = self._fresh_training_file(20 if n_train is None else n_train, cache_dir)
            tx, ty, _ = self.load_pairs(path)
        if n_train is not None and train_data is not None and n_train < tx.shape[0]:
            tx, ty = tx[:n_train], ty[:n_train]
            desc["pairs"] = n_train
        return self._pool(tx, ty, desc), eval_pool

    # -- rollout health (specprobe/probing/rollout_health.py) ----------------------------------
    def rollout_set(self, data=None, *, n_initial: int, steps: int, seed: int, cache_dir=None):
        """Held-out trajectories (a RolloutSet): ``data`` (a trajectory file), else fresh solver runs; see .rollout."""
        from .rollout import rollout_set

        return rollout_set(self, data, n_initial=n_initial, steps=steps, seed=seed, cache_dir=cache_dir)

    def rollout_leads(self, rollout_set, *, n_ensemble: int, seed: int):
        """Iterator over leads of (gen (B, E, C, H, W), ref (B, 1, C, H, W)), loss space; see .rollout."""
        from .rollout import rollout

        return rollout(self, rollout_set, n_ensemble=n_ensemble, seed=seed)

    def _pool(self, x, y, description):
        from ..base import PairPool, state_fingerprints

        def take(indices):
            idx = list(indices)
            return Batch(payload={"input": x[idx], "target": y[idx]}, size=len(idx), meta={"pairs": idx})

        keys = list(zip(state_fingerprints(x), state_fingerprints(y)))
        return PairPool(size=int(x.shape[0]), take=take, state_keys=keys, description=description)

    def _fresh_training_file(self, n_train: int, cache_dir):
        """Shallow-water pairs never seen by the run (a seed its recipe never used), cached by recipe."""
        import math

        from .data import cached_solver_states, solver_recipe

        cfg = (self.spec.training or {}).get("config") or {}
        per_traj = 5  # 6 states -> 5 consecutive pairs per trajectory
        n_traj = max(1, math.ceil(n_train / per_traj))
        # The run drew training ICs from seed*1000+1 and held-out ICs from seed*1000+2; +500 is neither.
        recipe = solver_recipe(self, n_traj=n_traj, n_states=per_traj + 1, seed=int(cfg.get("seed", 0)) * 1000 + 500)
        if recipe is None:
            raise DataError("this checkpoint does not record the shallow-water recipe of its training data; "
                            "give training pairs with --train-data FILE (specprobe.th-sfno-data format)")
        path, cached = cached_solver_states(recipe, kind="train", target=self, cache_dir=cache_dir,
                                            description="lookahead training pairs", generator="specprobe lookahead")
        desc = {"source": "fresh shallow-water pairs (specprobe/models/th/swe.py, the run's data recipe)",
                "recipe": recipe, "cache_file": str(path), "pairs": n_traj * per_traj, "cached": cached}
        return path, desc
