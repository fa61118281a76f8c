"""specprobe: how the spectral energy score's gradients reach each spherical-harmonic degree.

The top-level package stays light (no torch import) so the CLI starts instantly. The engine lives in
``specprobe.probing``; no subpackage or module is named like a top-level function, so importing one
can never rebind ``specprobe.probe`` (it did once: the second call hit a module).
"""

__version__ = "0.1.0"


def probe(*args, **kwargs):
    """Run the per-degree gradient probe; see :func:`specprobe.probing.api.probe`."""
    from .probing.api import probe as _probe

    return _probe(*args, **kwargs)


def load_result(source):
    """Any specprobe result (a JSON file, an output directory, or ``probe(...)``'s return value) as an
    object with ``plot(name)``, ``table()`` and ``to_xarray()``; see :mod:`specprobe.report.results`."""
    from .report.results import load_result as _load_result

    return _load_result(source)


__all__ = ["__version__", "load_result", "probe"]
