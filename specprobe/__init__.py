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


__all__ = ["__version__", "probe"]
