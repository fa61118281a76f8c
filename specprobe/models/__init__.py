"""Checkpoint adapters: each turns one family's files into a :class:`~.base.ProbeTarget`.

    base.py           ProbeTarget / SpectralParam / Batch: what the engine sees
    safe_load.py      the only torch.load (weights_only, allow-list)
    registry.py       which adapter reads a file (the one place that knows every family)
    resources.py      refuse grids that cannot fit, before allocating
    th_checkpoint.py  torch-harmonics SFNO: the ``specprobe.th-sfno`` format, plain state dict + sidecar
    th_model.py       StochasticSFNO: noise channels -> ensemble, as fme trains
    th_data.py        the ``specprobe.th-sfno-data`` held-out sample format
    th_target.py      THSFNOTarget, the torch-harmonics ProbeTarget
    swe.py            shallow-water trajectories (training data of the bundled model)
    fme_describe.py   fme checkpoints without importing fme (``info``)
    fme_layouts.py    where l sits in each fme filter parameter
    fme_data.py       ACE netCDF and synthetic data
    fme_adapter.py    FmeTarget: fme's own stepper and training forward
    fme_adam.py       per-degree Adam statistics from ckpt.tar
"""
