"""Find a torch-harmonics model's state dict inside what a training loop saved.

Accepted, all read with torch's weights-only unpickler: a bare state dict; one under ``state_dict``,
``model_state``, ``model_state_dict`` or ``model`` (training loops, makani, PyTorch Lightning, whose
file also holds epoch, global_step, optimizer_states, lr_schedulers ...); and keys behind any prefix
ending in ``.`` (Lightning's attribute name such as ``model.``, DistributedDataParallel's ``module.``,
``torch.compile``'s ``_orig_mod.``, or several of them). The prefix is found from where the SFNO's
filters sit (``<prefix>blocks.<i>.global_conv.weight``); entries outside it belong to other modules
of the same Lightning module (a loss, an EMA copy under another prefix ...) and are set aside, named.

The other models in ``torch_harmonics.examples.models`` (0.8.0) are recognised by their own keys and
refused by name. No torch at module level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import CheckpointError

WRAPPER_KEYS = ("state_dict", "model_state", "model_state_dict", "model")
LIGHTNING_KEYS = ("pytorch-lightning_version", "optimizer_states", "lr_schedulers", "global_step")
_FILTER = re.compile(r"^(.*?)blocks\.\d+\.global_conv\.weight$")

# torch-harmonics 0.8.0 examples other than the SFNO, by keys only they have, and why they are refused.
_OTHER_MODELS = (
    ("LocalSphericalNeuralOperator", lambda ks: any(k.endswith("local_conv.weight") for k in ks),
     "not supported: specprobe builds SphericalFourierNeuralOperator only (the LSNO's global blocks do carry "
     "per-degree filters, but its DISCO encoder, decoder and local blocks have no degree axis and their filter "
     "basis cannot be read from the weights)"),
    ("SphericalTransformer", lambda ks: any(".self_attn.q_weights" in k for k in ks),
     "not supported: its weights are attention projections and DISCO convolutions, none has a degree axis l"),
    ("SphericalSegformer", lambda ks: any(".att.q_weights" in k or k.startswith("segmentation_head.") for k in ks),
     "not supported: its weights are attention projections and DISCO convolutions, none has a degree axis l"),
    ("SphericalUNet", lambda ks: any(k.startswith("dblocks.") for k in ks) and any(k.startswith("ublocks.") for k in ks),
     "not supported: its weights are DISCO convolutions and batch norms, none has a degree axis l"),
)


@dataclass
class FoundStateDict:
    """A torch-harmonics SFNO state dict, its keys as the SFNO itself names them."""

    state: dict
    wrapper: str | None = None  # the top-level key it was under (None: the file is the state dict)
    lightning: bool = False
    prefix: str = ""  # stripped from every key, e.g. "model.", "_orig_mod.", "module."
    ignored: list = field(default_factory=list)  # entries outside the prefix

    def describe(self) -> str:
        where = "bare state dict" if self.wrapper is None else f"state dict under {self.wrapper!r}"
        if self.lightning:
            where = f"PyTorch Lightning checkpoint ({where})"
        if self.prefix:
            where += f", key prefix {self.prefix!r} removed"
        if self.ignored:
            more = f" (+{len(self.ignored) - 2} more)" if len(self.ignored) > 2 else ""
            where += f", {len(self.ignored)} entries of other modules set aside: {', '.join(self.ignored[:2])}{more}"
        return where


def _is_tensor_mapping(obj) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _candidates(obj):
    """(wrapper key or None, tensor mapping) pairs the file may hold a model's state dict in."""
    if _is_tensor_mapping(obj):
        yield None, obj
    if isinstance(obj, dict) and "format" not in obj:
        for key in WRAPPER_KEYS:
            if _is_tensor_mapping(obj.get(key)):
                yield key, obj[key]


def other_th_model(keys) -> tuple[str, str] | None:
    """(class name, why refused) when ``keys`` are those of another torch-harmonics example model."""
    keys = [str(k) for k in keys]
    for name, matches, why in _OTHER_MODELS:
        if matches(keys):
            return name, why
    return None


def find_sfno_state_dict(obj, path) -> FoundStateDict | None:
    """The SFNO state dict in a loaded file; None when there is none; one-line errors for the near misses."""
    lightning = isinstance(obj, dict) and any(k in obj for k in LIGHTNING_KEYS)
    for wrapper, mapping in _candidates(obj):
        prefixes = sorted({m.group(1) for k in mapping if (m := _FILTER.match(str(k)))})
        prefixes = [p for p in prefixes if p == "" or p.endswith(".")]
        other = other_th_model(mapping)
        if other is not None:
            name, why = other
            raise CheckpointError(f"{path}: a torch-harmonics {name} state dict: {why}")
        if not prefixes:
            continue
        if len(prefixes) > 1:
            raise CheckpointError(f"{path}: holds {len(prefixes)} SFNOs (key prefixes {', '.join(map(repr, prefixes))}); "
                                  "save the one to probe on its own (model.state_dict())")
        prefix = prefixes[0]
        state = {str(k)[len(prefix):]: v for k, v in mapping.items() if str(k).startswith(prefix)}
        ignored = [str(k) for k in mapping if not str(k).startswith(prefix)]
        return FoundStateDict(state=state, wrapper=wrapper, lightning=lightning and wrapper == "state_dict",
                              prefix=prefix, ignored=ignored)
    return None
