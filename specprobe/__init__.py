"""specprobe: how the spectral energy score's gradients reach each spherical-harmonic degree.

The top-level package stays light (no torch import) so the CLI starts instantly.
"""

__version__ = "0.1.0"


def probe(*args, **kwargs):
    """Run the per-degree gradient probe; see :func:`specprobe.probe.api.probe`."""
    from .probe.api import probe as _probe

    return _probe(*args, **kwargs)
