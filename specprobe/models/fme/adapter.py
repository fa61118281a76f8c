"""The fme/ACE checkpoint adapter: a :class:`~specprobe.models.base.ProbeTarget` over fme's own stepper.

Loading never lets fme unpickle: the file is read once with ``load_checkpoint_file`` (weights_only,
fme's ``VariableMetadata`` allow-listed) and fme rebuilds the stepper from that dict with
``Stepper.from_state`` (what ``fme.ace.stepper.single_module.load_stepper`` calls after its own
unrestricted unpickling of the file), handling current and legacy formats. EMA weights go through
``fme.core.ema.load_ema_params_if_available`` exactly as ``load_stepper(use_ema_if_available=True)``.

The forward is fme's training forward for one step (``TrainStepper.train_on_batch`` ->
``_accumulate_loss``): ``Stepper.forcing_deriver``, ``BatchData.get_start`` and
``broadcast_ensemble`` (repeat-interleave), ``Stepper.predict_generator`` (input masking, fme's
step: normalise, network, residual prediction, denormalise, corrector, ocean) with the noise drawn
from a seeded ``RandomState`` carried in ``StepperState`` (one generator for all B*E rows, each row
its own slice), ``unfold_ensemble_dim``. The loss-space conversion reuses the objects of the
``StepLoss`` that ``Stepper.build_loss`` builds: its loss normaliser and packer (channels in
``stepper.loss_names`` = sorted out_names), NaN targets zeroed in both, per-variable weights.
K-step training rollouts (``n_forward_steps``): :mod:`.rollout`, through :meth:`FmeTarget.loss_steps`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import CheckpointError, SpecprobeError
from ..base import Batch, SpectralParam
from .describe import (  # noqa: F401 - re-exported entry points for the registry/CLI
    describe_fme_checkpoint,
    grid_info,
    infer_grid_from_latitudes,
    is_fme_checkpoint,
    single_module_config,
)
from .options import FmeOptions
from .training_config import training_loss_config

if TYPE_CHECKING:
    import torch

FME_MISSING = "fme checkpoints need the fme extra: pip install 'specprobe[fme]' (fme==2026.10.0)"


def _require_fme():
    try:
        import fme  # noqa: F401
    except ImportError as e:
        raise SpecprobeError(FME_MISSING) from e


def load_fme_target(path: str | os.PathLike[str], options: FmeOptions | None = None, *,
                    device: str | torch.device = "cpu", ema: bool = False, trust: bool = False,
                    obj: dict | None = None, **fields) -> FmeTarget:
    """Load an fme trainer checkpoint (``ckpt.tar``, ``best_ckpt.tar``, ``best_inference_ckpt.tar``,
    ``ckpt_NNNN.tar``; current or legacy format) as a :class:`FmeTarget`.

    Args:
        path: the checkpoint file.
        options: loss, data and rollout options (:class:`FmeOptions`); None builds one from ``fields``,
            e.g. ``load_fme_target(path, n_forward_steps=3, labels=["cm4"])``. Unset options follow
            the run's training config (``loss.weights``, rollout; legacy checkpoints store it, current
            ones through ``<experiment_dir>/config.yaml``).
        device: a ``torch.device`` or its name (cpu or cuda).
        ema: use the EMA weights (``ema.ema_params``; only ``ckpt.tar`` has them).
        trust: allow full unpickling (only for files you made).
        obj: the already safely loaded file (the registry reads each file once).
        **fields: :class:`FmeOptions` fields, when ``options`` is None.

    Returns:
        The :class:`FmeTarget`: fme's own stepper, in train mode at the checkpoint's epoch.

    Raises:
        CheckpointError: not an fme checkpoint, a stepper fme cannot rebuild, no EMA weights with ``ema``,
            or options the checkpoint contradicts. SpecprobeError: fme is not installed.
    """
    from ..safe_load import load_checkpoint_file

    if options is None:
        options = FmeOptions(**fields)
    elif fields:
        raise TypeError(f"load_fme_target: give options or fields ({', '.join(sorted(fields))}), not both")
    if obj is None:
        obj = load_checkpoint_file(path, trust=trust)
    if not is_fme_checkpoint(obj):
        raise CheckpointError(f"{path}: not an fme checkpoint (expected stepper.config and weights)")
    _require_fme()
    return FmeTarget(obj, path, device=device, ema=ema, options=options)


def _device_context(device):
    """fme puts everything on ``fme.get_device()`` (the current cuda device when there is one):
    force CPU when asked for CPU, and make the requested GPU the current one otherwise."""
    import torch
    from fme.core.device import force_cpu

    if device.type == "cpu":
        return force_cpu(True)
    return torch.cuda.device(device) if device.index is not None else contextlib.nullcontext()


def _fme_runs_whole_on_each_rank() -> None:
    """Under torchrun, specprobe's ranks split samples (probing/distributed.py) and each rank runs
    fme's model whole. fme would otherwise join the same process group itself and refuse to build
    outside ``Distributed.context()``; ``FME_DISTRIBUTED_BACKEND=none`` makes its singleton
    non-distributed (read once, at its first use). Spatial model parallelism (``model``) is not
    supported (docs/distributed.md)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return
    backend = os.environ.get("FME_DISTRIBUTED_BACKEND")
    if backend not in (None, "", "none"):
        raise SpecprobeError(f"FME_DISTRIBUTED_BACKEND={backend}: under torchrun specprobe splits samples over "
                             "ranks and runs fme's model whole on each; unset it (see docs/distributed.md)")
    os.environ["FME_DISTRIBUTED_BACKEND"] = "none"


class FmeTarget:
    """ProbeTarget for an fme stepper rebuilt from a checkpoint dict."""

    family = "fme"
    loss_grid = "legendre-gauss"  # fme's EnsembleLoss SHT: LatLonOperations default grid

    def __init__(self, obj, path, *, device="cpu", ema: bool = False, options: FmeOptions = FmeOptions()):
        import torch

        _fme_runs_whole_on_each_rank()
        self.path = Path(path)
        self._obj = obj
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise SpecprobeError(f"--device {device}: fme runs on cpu or cuda")
        grid = grid_info(obj)
        if grid["kind"] != "latlon":
            raise CheckpointError(f"{path}: {grid['kind']} grid: specprobe probes lat-lon fme checkpoints only")
        from ..resources import check_grid_fits

        # the network's four transforms, the loss SHT and the synthetic-data ISHT, before fme allocates any
        check_grid_fits(grid["nlat"], grid["nlon"], n_transforms=6, device=self.device, what=str(path))
        self.options = options
        self.crps_weight, self.energy_score_weight = float(options.crps_weight), float(options.energy_score_weight)
        self.labels = list(options.labels) if options.labels else []
        self.time_start, self.time_stop = options.time_start, options.time_stop
        self._last_source = None
        with self._ctx():
            self.stepper = self._build_stepper(ema)
            self.ema_used = bool(ema)
            # fme trains in train mode, with the corrector configured for the checkpoint's epoch.
            self.stepper.set_train()
            if isinstance(obj.get("epoch"), int):
                self.stepper.set_epoch(obj["epoch"])
        self.conditional = bool(single_module_config(obj).get("builder", {}).get("conditional", False))
        known_labels = sorted(self.stepper.training_dataset_info.all_labels)
        if self.labels and not self.conditional:
            raise SpecprobeError(f"{path}: labels {self.labels} given, but the model is not label-conditional")
        if set(self.labels) - set(known_labels):
            raise SpecprobeError(f"{path}: unknown label(s) {sorted(set(self.labels) - set(known_labels))}; "
                                 f"the checkpoint knows {known_labels}")
        self.channel_names = list(self.stepper.loss_names)
        self.nlat, self.nlon = (int(s) for s in self.stepper.training_dataset_info.img_shape)
        self.data_grid = (infer_grid_from_latitudes(grid.get("lat"))
                          or single_module_config(obj).get("builder", {}).get("config", {}).get("data_grid", "legendre-gauss"))
        self.loss_config, self.loss_config_source = training_loss_config(obj, path)
        self.loss_weights = self._resolve_weights(options.loss_weights)
        self.rollout = self._resolve_rollout(options)
        self._params = self._spectral_params(options.degree_axis)
        self._step_losses = {}

    # -------------------------------------------------------------- loading

    def _ctx(self):
        return _device_context(self.device)

    def _build_stepper(self, ema):
        from fme.ace.stepper.single_module import Stepper
        from fme.core.ema import load_ema_params_if_available
        from fme.core.registry.module import ModuleSelector

        btype = single_module_config(self._obj).get("builder", {}).get("type")
        known = sorted(getattr(ModuleSelector.registry, "_types", {}))
        if known and btype not in known:
            raise CheckpointError(f"{self.path}: unknown builder type {btype!r}; fme knows {known}")
        state = dict(self._obj["stepper"])  # from_state rewrites keys of legacy states: keep the original
        try:
            stepper = Stepper.from_state(state)
        except Exception as e:  # noqa: BLE001 - fme raises many types; one line for the user
            raise CheckpointError(f"{self.path}: fme cannot rebuild the stepper: {type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:300]}") from e
        if ema and not load_ema_params_if_available(self._obj, stepper.modules, str(self.path)):
            raise CheckpointError(f"{self.path}: --ema: the file has no EMA weights (ema.ema_params); "
                                  "only ckpt.tar (saved with optimizer state) carries them")
        return stepper

    def _resolve_weights(self, explicit):
        if explicit is not None:
            weights, self.loss_weights_source = dict(explicit), "given"
        else:
            weights = dict((self.loss_config or {}).get("weights") or {})
            self.loss_weights_source = self.loss_config_source if weights else "none (all 1)"
        unknown = sorted(set(weights) - set(self.channel_names))
        if unknown:
            raise CheckpointError(f"{self.path}: loss weights for {unknown}, which are not loss channels {self.channel_names}")
        return {k: float(v) for k, v in weights.items()}

    def _resolve_rollout(self, options: FmeOptions):
        from .rollout import resolve_rollout

        if self.stepper.n_ic_timesteps != 1:
            raise CheckpointError(f"{self.path}: {self.stepper.n_ic_timesteps} initial-condition times; "
                                  "specprobe probes one-time initial conditions only")
        return resolve_rollout(self._obj, self.path, n_forward_steps=options.n_forward_steps,
                               optimize_last_step_only=options.optimize_last_step_only,
                               pushforward_steps=options.pushforward_steps)

    def named_modules(self):
        """(name prefix, torch module) in fme's optimizer order (``stepper.modules``)."""
        mods = list(self.stepper.modules)
        return [("", mods[0])] + [(f"secondary_decoder.{i}.", m) for i, m in enumerate(mods[1:])]

    def _spectral_params(self, overrides):
        from .layouts import spectral_params

        return spectral_params(self.named_modules(), overrides=overrides, where=str(self.path))

    def parameters(self) -> list[SpectralParam]:
        return list(self._params)

    # -------------------------------------------------------------- data

    def data_spec(self, n_forward_steps: int = 1):
        from .data import DataSpec

        st = self.stepper
        req = st.config.get_evaluation_window_data_requirements(n_forward_steps)
        normalizer = st.normalizer
        loss_norm = self.fme_step_loss().loss.normalizer
        means = {k: float(v) for k, v in normalizer.means.items()}
        stds = {k: float(v) for k, v in normalizer.stds.items()}
        tend = {k: float(loss_norm.stds[k]) for k in st.prognostic_names
                if k in loss_norm.stds and k in stds and float(loss_norm.stds[k]) != stds[k]}
        lat = grid_info(self._obj).get("lat")
        return DataSpec(names=sorted(req.names), input_names=sorted(st.config.input_names),
                        target_names=list(self.channel_names), nlat=self.nlat, nlon=self.nlon, grid=self.data_grid,
                        lat=lat, timestep_seconds=st.training_dataset_info.timestep.total_seconds(),
                        means=means, stds=stds, tendency_stds=tend,
                        allow_nan_inputs=bool(getattr(normalizer, "fill_nans_on_normalize", False)),
                        allow_missing_variables=bool(req.allow_missing_variables),
                        n_ic_timesteps=int(st.n_ic_timesteps), training_dataset_info=st.training_dataset_info)

    def batches(self, data, *, n_samples: int, batch_size: int, seed: int, time_start=None, time_stop=None,
                n_forward_steps: int | None = None) -> Iterator[Batch]:
        """Samples read by fme's own dataset code, or, with ``data=None``, synthetic fields.

        ``data``: a netCDF file, directory or glob; a zarr store; a YAML file holding an fme data config;
        ``config:train`` / ``config:validation`` (the loader sections of the experiment's config.yaml).
        Each sample spans the initial condition and ``n_forward_steps`` later times (default: the
        rollout the loss covers, ``self.rollout.n_forward_steps``).
        """
        from .data import iter_batches
        from .sources import resolve_source

        steps = self.rollout.n_forward_steps if n_forward_steps is None else n_forward_steps
        self._last_source = "synthetic" if data is None else resolve_source(data, self.path)
        spec = self.data_spec(steps)
        yield from iter_batches(None if data is None else self._last_source, spec, n_samples=n_samples, batch_size=batch_size, seed=seed,
                                n_timesteps=spec.n_ic_timesteps + int(steps), checkpoint_path=self.path,
                                time_start=self.time_start if time_start is None else time_start,
                                time_stop=self.time_stop if time_stop is None else time_stop)

    def _batch_data(self, batch: Batch):
        import numpy as np
        import torch
        import xarray as xr
        from fme.ace.data_loading.batch_data import BatchData
        from fme.core.labels import BatchLabels

        payload = batch.payload
        data = {k: v.to(self.device, torch.float32) for k, v in payload["data"].items()}
        b = batch.size
        labels = None
        if self.conditional and payload.get("labels") is not None and not self.labels:
            labels = payload["labels"].to(self.device)  # the data config's labels, as training saw them
        elif self.conditional:  # every sample carries self.labels; none -> fme's all-zero label vector
            labels = BatchLabels(torch.ones((b, len(self.labels)), device=self.device), list(self.labels))
        mask = payload.get("data_mask")
        mask = None if mask is None else {k: v.to(self.device) for k, v in mask.items()}
        time = xr.DataArray(np.asarray(payload["time"]), dims=["sample", "time"])
        return BatchData(data=data, time=time, labels=labels, horizontal_dims=["lat", "lon"], epoch=self._obj.get("epoch"),
                         data_mask=mask)

    # -------------------------------------------------------------- forward

    def generate(self, batch: Batch, *, n_ensemble: int, seed: int):
        """fme's training forward for one step: (gen {name: (B, E, H, W)}, target {name: (B, 1, H, W)}), physical."""
        from fme.core.optimization import NullOptimization
        from fme.core.random_state import RandomState
        from fme.core.stepper_state import StepperState
        from fme.core.tensors import add_ensemble_dim, unfold_ensemble_dim

        if not isinstance(n_ensemble, int) or n_ensemble < 1:
            raise ValueError(f"n_ensemble: expected an integer >= 1, got {n_ensemble!r}")
        st = self.stepper
        with self._ctx():
            data = self._batch_data(batch)
            # Same order as TrainStepper.train_on_batch / _accumulate_loss (fme 2026.10.0).
            target_data = st.get_forward_data(data, compute_derived_variables=False)
            data = st.forcing_deriver(data)
            ic = data.get_start(st.prognostic_names, st.n_ic_timesteps).as_batch_data().broadcast_ensemble(n_ensemble)
            forcing = data.broadcast_ensemble(n_ensemble)
            state = StepperState(random_state=RandomState.from_seed(int(seed)))
            steps = st.predict_generator(ic.data, forcing.data, 1, NullOptimization(), labels=ic.labels,
                                         data_mask=forcing.data_mask, stepper_state=state)
            out = next(iter(steps))
            gen = unfold_ensemble_dim(out.output, n_ensemble=n_ensemble)
            target = add_ensemble_dim({k: v.select(st.TIME_DIM, 0) for k, v in target_data.data.items()})
        return gen, target

    def to_loss_space(self, gen, target):
        """fme ``WeightedMappingLoss``: loss-normalise, pack sorted(out_names), zero NaN targets, weight."""
        import torch

        wml = self.fme_step_loss().loss
        with self._ctx():
            g = wml.packer.pack(wml.normalizer.normalize({k: gen[k] for k in wml.packer.names}), axis=-3)
            t = wml.packer.pack(wml.normalizer.normalize({k: target[k] for k in wml.packer.names}), axis=-3)
            nan = t.isnan()
            if nan.any():
                g = torch.where(nan, 0.0, g)
                t = torch.where(nan, 0.0, t)
            w = torch.tensor([self.loss_weights.get(n, 1.0) for n in wml.packer.names], device=g.device, dtype=g.dtype)
            w = w[:, None, None]
            return w * g, w * t

    def forward(self, batch: Batch, *, n_ensemble: int, seed: int):
        """(gen (B, E, C, H, W), target (B, 1, C, H, W)) in fme's loss space; differentiable.

        Always one step; the probe engine takes :meth:`loss_steps`, the ``rollout`` this target was loaded with.
        """
        gen, target = self.generate(batch, n_ensemble=n_ensemble, seed=seed)
        return self.to_loss_space(gen, target)

    def persistence(self, batch: Batch, *, step: int | None = None):
        """The persistence reference of loss step ``step`` (0-based; default: the rollout's last loss step) in
        loss space, (B, 1, C, H, W): the true prognostic state one step before the target (the initial
        condition for step 0), normalised, packed and weighted as the target. Output channels that are
        not prognostic inputs (fme diagnostic outputs) have no persistence: their rows are NaN, so their
        predictability is reported as missing. None when no output channel is an input."""
        import torch

        k = self.rollout.loss_steps[-1] if step is None else int(step)
        wml = self.fme_step_loss().loss
        prognostic = set(self.stepper.prognostic_names)
        names = list(wml.packer.names)
        if not prognostic.intersection(names):
            return None
        with self._ctx(), torch.no_grad():
            data = self._batch_data(batch)
            t_ref = int(self.stepper.n_ic_timesteps) - 1 + k
            t_tgt = t_ref + 1
            fields = {n: data.data[n].select(1, t_ref) for n in names if n in prognostic}
            norm = wml.normalizer.normalize(fields)
            target = wml.normalizer.normalize({n: data.data[n].select(1, t_tgt) for n in fields})
            w = [self.loss_weights.get(n, 1.0) for n in names]
            rows = []
            for n, weight in zip(names, w):
                if n in norm:
                    x = torch.where(target[n].isnan(), 0.0, norm[n])  # the loss zeroes NaN targets
                    rows.append(weight * x)
                else:
                    rows.append(torch.full_like(next(iter(norm.values())), float("nan")))
            return torch.stack(rows, dim=-3)[:, None]

    def loss_steps(self, batch: Batch, *, n_ensemble: int, seed: int) -> list[tuple]:
        """The optimized steps of fme's training rollout: [(gen (B, E, C, H, W), target (B, 1, C, H, W),
        step weight)] in loss space; the probed loss is the step-weighted sum of their one-step losses."""
        from .rollout import generate_rollout

        return [(*self.to_loss_space(gen, tgt), weight)
                for _, gen, tgt, weight in generate_rollout(self, batch, n_ensemble=n_ensemble, seed=seed)]

    def fme_step_loss(self, whitening=None, *, crps_weight=None, energy_score_weight=None):
        """fme's own ``StepLoss`` (``Stepper.build_loss`` of an ``EnsembleLoss`` config) as an oracle.

        ``whitening``: None or fme's dict form ``{kind, exponent, eps_frac}`` / a WhiteningConfig.
        """
        from fme.core.loss import StepLossConfig

        from ...spectral import WhiteningConfig

        if isinstance(whitening, WhiteningConfig):
            whitening = None if whitening.kind == "none" else whitening.to_dict()
        cw = self.crps_weight if crps_weight is None else float(crps_weight)
        ew = self.energy_score_weight if energy_score_weight is None else float(energy_score_weight)
        key = (cw, ew, repr(sorted((whitening or {}).items())))
        if key not in self._step_losses:
            kwargs = {"crps_weight": cw, "energy_score_weight": ew}
            if whitening:
                kwargs["energy_score_whitening"] = dict(whitening)
            config = StepLossConfig(type="EnsembleLoss", kwargs=kwargs, weights=dict(self.loss_weights))
            with self._ctx():
                self._step_losses[key] = self.stepper.build_loss(config)
        return self._step_losses[key]

    def adam_by_l(self) -> dict | None:
        """Per-degree Adam statistics when the file carries optimizer state (``ckpt.tar``), else None."""
        if not (self._obj.get("optimization") or {}).get("optimizer_state_dict"):
            return None
        return adam_by_l(self._obj, self)

    def optimizer_settings(self):
        """The run's optimizer: type from its config.yaml (fme default Adam), eps/betas from ckpt.tar's state."""
        from ..base import OptimizerSettings
        from .adam import optimizer_hyperparameters
        from .training_config import training_optimizer_config

        cfg, cfg_src = training_optimizer_config(self._obj, self.path)
        hyper = optimizer_hyperparameters(self._obj)
        if cfg is None and hyper is None:
            return OptimizerSettings(name="Adam", source=f"fme default Adam (optimizer type {cfg_src}; "
                                     "eps/betas: torch defaults)", betas=(0.9, 0.999))
        kwargs = dict((cfg or {}).get("kwargs") or {})
        name = str((cfg or {}).get("optimizer_type") or "Adam")
        if name == "FusedAdam":
            name = "AdamW"  # fme builds FusedAdam as torch.optim.AdamW(fused=True)
        eps = float((hyper or {}).get("eps") or kwargs.get("eps", 1e-8))
        betas = tuple((hyper or {}).get("betas") or kwargs.get("betas", (0.9, 0.999)))
        lr = (hyper or {}).get("lr", (cfg or {}).get("lr"))
        src = [f"type: {cfg_src}" if cfg is not None else f"type: fme default Adam ({cfg_src})",
               "eps/betas/lr: ckpt.tar optimizer state" if hyper else "eps/betas: config kwargs or torch defaults"]
        extra = {"weight_decay": (hyper or {}).get("weight_decay", kwargs.get("weight_decay"))}
        return OptimizerSettings(name=name, eps=eps, betas=betas, lr=lr, source="; ".join(src), extra=extra)

    def optimizer_state(self) -> dict | None:
        """The checkpoint's Adam second moments per parameter (``ckpt.tar``), else None."""
        if not (self._obj.get("optimization") or {}).get("optimizer_state_dict"):
            return None
        from .adam import second_moments

        return second_moments(self._obj, self) or None

    # -------------------------------------------------------------- training (lookahead)

    def trainable_module(self):
        """fme's ``stepper.modules``: the parameters, in the order fme hands them to its optimizer."""
        return self.stepper.modules

    def training_recipe(self) -> dict:
        """The run's loss, ensemble size and optimizer: ``ckpt.tar``'s optimizer state when stored."""
        from .lookahead_data import training_recipe

        return training_recipe(self)

    def lookahead_pools(self, data=None, train_data=None, *, n_train: int = 16, n_eval: int | None = 16,
                        seed: int = 0, cache_dir=None, train_time_stop=None, eval_time_start=None):
        """(training pool, evaluation pool): a time split of ``data`` (or two sources), else synthetic."""
        from .lookahead_data import lookahead_pools

        return lookahead_pools(self, data, train_data, n_train=n_train, n_eval=n_eval, seed=seed,
                               train_time_stop=train_time_stop, eval_time_start=eval_time_start)

    # -------------------------------------------------------------- rollout health

    def rollout_set(self, data=None, *, n_initial: int, steps: int, seed: int, cache_dir=None, time_start=None,
                    time_stop=None):
        """Held-out windows of ``data`` (a RolloutSet); see :mod:`.inference_rollout`."""
        from .inference_rollout import rollout_set

        return rollout_set(self, data, n_initial=n_initial, steps=steps, seed=seed, cache_dir=cache_dir,
                           time_start=time_start, time_stop=time_stop)

    def rollout_leads(self, rollout_set, *, n_ensemble: int, seed: int):
        """fme's inference stepping: iterator over leads of (gen, ref) in loss space; see :mod:`.inference_rollout`."""
        from .inference_rollout import rollout

        return rollout(self, rollout_set, n_ensemble=n_ensemble, seed=seed)

    # -------------------------------------------------------------- describe

    def describe(self) -> dict:
        info = describe_fme_checkpoint(self._obj, self.path)
        info.pop("described_with", None)
        info["spectral_parameters"] = [p.describe() for p in self._params if p.per_degree]
        info["unplaced_filter_parameters"] = []
        info["other_parameters"] = [p.name for p in self._params if not p.per_degree]
        info.update({
            "described_with": "fme modules rebuilt by Stepper.from_state (degree axes from live module classes)",
            "ema_used": self.ema_used,
            "loss_channels": list(self.channel_names),
            "loss_weights": dict(self.loss_weights),
            "loss_weights_source": self.loss_weights_source,
            "loss_normalization": "fme loss normaliser (normalization.loss, else network overridden by residual for prognostic names)",
            "forward": "fme TrainStepper training forward, module in train mode, corrector at the checkpoint's epoch",
            "rollout": self.rollout.describe(),
            "labels": list(self.labels) if self.conditional else None,
            "data_source": getattr(self._last_source, "label", self._last_source),
            "data_config": data_provenance(self._last_source),
            "synthetic_data": self._last_source == "synthetic",
            "time_window": [self.time_start, self.time_stop],
            "device": str(self.device),
        })
        return info


def data_provenance(source) -> dict | None:
    """The fme loader config a real --data became (None for synthetic data or before any batch)."""
    from .sources import DataSource

    return source.provenance() if isinstance(source, DataSource) else None


def adam_by_l(obj, target: "FmeTarget") -> dict:
    """Per-degree Adam statistics of every per-degree parameter; see :func:`.adam.adam_by_l`."""
    from .adam import adam_by_l as _adam_by_l

    return _adam_by_l(obj, target)


__all__ = ["FME_MISSING", "FmeTarget", "adam_by_l", "describe_fme_checkpoint", "is_fme_checkpoint", "load_fme_target"]
