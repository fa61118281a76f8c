"""Checkpoint adapters: each family package turns its files into a :class:`~.base.ProbeTarget`.

    base.py       ProbeTarget / SpectralParam / Batch: what the engine sees
    safe_load.py  the only torch.load (weights_only, allow-list)
    registry.py   which family reads a file: one dispatch over the family packages
    options.py    LoadOptions: trust, ema and each family's options (th/options.py, fme/options.py)
    resources.py  refuse grids that cannot fit, before allocating
    th/           torch-harmonics SFNOs (the bundled model's family)
    fme/          fme/ACE trainer checkpoints through fme's own stepper

A family package exposes ``NAME``, ``claims(obj, path)``, ``describe_file(path, obj, options)`` and
``load(path, obj, device=, options=)`` (``options``: a LoadOptions); nothing outside it knows the family's files.
"""
