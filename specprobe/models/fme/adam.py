"""Per-degree Adam statistics from the optimizer state fme stores in ``ckpt.tar``.

Optimizer state index i is the i-th parameter of ``itertools.chain(*[m.parameters() for m in
stepper.modules])``: the order ``fme.core.optimization.OptimizationConfig.build`` hands parameters
to ``torch.optim`` (and the order fme's resume path, ``Optimization.load_state``, relies on). Every
mapping is checked by shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from ...errors import CheckpointError


def _optimizer_dict(obj, target) -> dict:
    opt = (obj.get("optimization") or {}).get("optimizer_state_dict") if isinstance(obj, Mapping) else None
    if not opt:
        raise CheckpointError(f"{target.path}: no optimizer state (fme writes it to ckpt.tar only)")
    return opt


def _paired_state(obj, target):
    """(SpectralParam, its optimizer state, its param group) per trainable parameter, checked by shape."""
    opt = _optimizer_dict(obj, target)
    params = list(itertools.chain(*[m.parameters() for _, m in target.named_modules()]))
    names = {id(p.tensor): p for p in target.parameters()}
    flat = [(i, g) for g in opt["param_groups"] for i in g["params"]]
    if len(flat) != len(params):
        raise CheckpointError(f"{target.path}: optimizer state has {len(flat)} parameters, the model {len(params)}")
    for (idx, group), p in zip(flat, params):
        sp = names.get(id(p))
        state = opt["state"].get(idx)
        if sp is None or not state or "exp_avg_sq" not in state:
            continue
        if tuple(state["exp_avg"].shape) != tuple(p.shape):
            raise CheckpointError(f"{target.path}: optimizer state {idx} has shape {tuple(state['exp_avg'].shape)}, "
                                  f"{sp.name} {tuple(p.shape)}: parameter order does not match")
        yield sp, state, group


def second_moments(obj, target) -> dict:
    """{parameter name: {"exp_avg_sq" (float64, real view, on the target's device), "step", "beta2", "eps"}}."""
    import torch

    out = {}
    for sp, state, group in _paired_state(obj, target):
        v = state["exp_avg_sq"]
        if v.is_complex():
            v = torch.view_as_real(v)
        out[sp.name] = {"exp_avg_sq": v.detach().to(device=sp.tensor.device, dtype=torch.float64),
                        "step": int(float(state["step"])), "beta2": float(group["betas"][1]),
                        "eps": float(group["eps"])}
    return out


def optimizer_hyperparameters(obj) -> dict | None:
    """lr, betas, eps, weight_decay, amsgrad of the first param group, or None without optimizer state."""
    opt = (obj.get("optimization") or {}).get("optimizer_state_dict") if isinstance(obj, Mapping) else None
    if not opt or not opt.get("param_groups"):
        return None
    group0 = opt["param_groups"][0]
    return {k: group0.get(k) for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}


def adam_by_l(obj, target) -> dict:
    """Per-degree Adam statistics of each per-degree parameter (files saved with optimizer state).

    ``target`` is the :class:`~.adapter.FmeTarget` built from the same file. Per degree l (all other axes):
    ``sqrt_v_hat`` = sqrt(mean v_hat), ``effective_step`` = mean |m_hat| / (sqrt(v_hat) + eps), with
    bias corrections m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t). Complex parameters use
    their (re, im) view, as torch's Adam does.
    """
    import torch

    opt = _optimizer_dict(obj, target)
    out = {}
    for sp, state, group in _paired_state(obj, target):
        if not sp.per_degree:
            continue
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if m.is_complex():
            m, v = torch.view_as_real(m), torch.view_as_real(v)
        step = float(state["step"])
        b1, b2 = group["betas"]
        eps = float(group["eps"])
        m_hat = m.double() / (1 - b1**step)
        v_hat = v.double() / (1 - b2**step)
        rows_v = v_hat.movedim(sp.degree_axis, 0).reshape(v_hat.shape[sp.degree_axis], -1)
        rows_m = m_hat.movedim(sp.degree_axis, 0).reshape(m_hat.shape[sp.degree_axis], -1)
        out[sp.name] = {
            "degree_axis": sp.degree_axis,
            "l0_bypassed": sp.l0_bypassed,
            "step": int(step),
            "sqrt_v_hat": rows_v.mean(1).sqrt().tolist(),
            "effective_step": (rows_m.abs() / (rows_v.sqrt() + eps)).mean(1).tolist(),
        }
    group0 = opt["param_groups"][0]
    return {
        "optimizer": {k: group0.get(k) for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")},
        "conventions": {"sqrt_v_hat": "sqrt(mean over the degree's elements of v / (1 - beta2^t))",
                        "effective_step": "mean over the degree's elements of |m_hat| / (sqrt(v_hat) + eps)",
                        "parameter_order": "itertools.chain(*[m.parameters() for m in stepper.modules])"},
        "parameters": out,
    }
