"""Coupling heatmap: loss band (rows) x parameter degree l (columns), one panel per variant."""

from __future__ import annotations

import numpy as np

from .figures import new_figure
from .tables import _num


def figure_coupling(coupling: dict):
    from matplotlib.colors import LogNorm

    names = list(coupling["variants"])
    fig, axes = new_figure(1, len(names), figsize=(6.5 * len(names), 4.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        m = np.asarray(coupling["variants"][name]["matrix"], dtype=float)
        m = np.where(m > 0, m, np.nan)
        im = ax.imshow(m, aspect="auto", origin="lower", norm=LogNorm(), cmap="viridis",
                       extent=(-0.5, m.shape[1] - 0.5, -0.5, m.shape[0] - 0.5))
        ax.set_yticks(range(m.shape[0]), [f"{b['lo']}–{b['hi']}" for b in coupling["loss_bands"]])
        ax.set_xlabel("parameter degree l")
        ax.set_ylabel("loss degrees (band)")
        ax.set_title(name, fontsize=10)
        fig.colorbar(im, ax=ax, label="|∂loss_band/∂w| per degree")
    fig.suptitle("how each band of the loss reaches each degree of the filter weights", fontsize=10)
    return fig


def coupling_table(coupling: dict):
    from rich.table import Table

    t = Table(title="Share of each loss band's gradient that lands on its own degrees")
    t.add_column("loss degrees")
    for name in coupling["variants"]:
        t.add_column(name, justify="right")
    for i, b in enumerate(coupling["loss_bands"]):
        shares = (_num(v["diagonal_share"][i], "{:.2f}") for v in coupling["variants"].values())
        t.add_row(f"{b['lo']}–{b['hi']}", *shares)
    return t
