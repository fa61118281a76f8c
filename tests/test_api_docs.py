"""The public API documents itself: every public function and method has type hints and a Google-style docstring
whose Args: section names each parameter (and Returns: when it returns something); every settings class's
docstring describes each field (a dataclass field always has its type)."""

import dataclasses
import inspect

import pytest

import specprobe
from specprobe import spectral
from specprobe.models import registry
from specprobe.models.fme import adapter as fme_adapter
from specprobe.models.fme.options import FmeOptions
from specprobe.models.options import LoadOptions
from specprobe.models.th.options import THOptions
from specprobe.probing import api, engine, lookahead, recommend, result, settings
from specprobe.probing.context import RunContext
from specprobe.report import results

FUNCTIONS = [
    specprobe.probe, specprobe.load_result, api.probe, engine.run_probe, registry.load_target,
    registry.describe_checkpoint, fme_adapter.load_fme_target, LoadOptions.from_kwargs, lookahead.lookahead,
    lookahead.sweep_variants, recommend.recommend, recommend.judge_paired, recommend.add_recommendation,
    result.json_safe, result.from_json_safe, results.load_result, RunContext.start, RunContext.load,
    RunContext.provenance,
    *(getattr(spectral, name) for name in spectral.__all__
      if inspect.isfunction(getattr(spectral, name))),
    *(getattr(cls, name) for cls in (results.GradByLResult, results.LookaheadResult, result.ProbeResult)
      for name, member in vars(cls).items() if inspect.isfunction(member) and not name.startswith("_")),
]
SETTINGS = [settings.ProbeSettings, settings.LossSettings, LoadOptions, FmeOptions, THOptions,
            lookahead.LookaheadSettings, recommend.Rule,
            *(getattr(spectral, name) for name in spectral.__all__
              if dataclasses.is_dataclass(getattr(spectral, name)))]


def _args_section(doc: str) -> str:
    return doc.split("Args:", 1)[1].split("Returns:", 1)[0].split("Raises:", 1)[0] if "Args:" in doc else ""


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_public_functions_have_hints_and_args_returns_docstrings(fn):
    doc = inspect.getdoc(fn) or ""
    sig = inspect.signature(fn)
    params = [p for name, p in sig.parameters.items() if name not in ("self", "cls")]
    if params:
        section = _args_section(doc)
        missing = [p.name for p in params if p.name not in section]
        assert not missing, f"{fn.__qualname__}: Args: does not name {missing}"
    unhinted = [p.name for p in params if p.annotation is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "checkpoint"]
    assert not unhinted, f"{fn.__qualname__}: no type hint on {unhinted}"
    if sig.return_annotation not in ("None", None):
        assert "Returns:" in doc, f"{fn.__qualname__}: no Returns: section"


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__qualname__)
def test_settings_classes_document_every_field(cls):
    doc = inspect.getdoc(cls) or ""
    section = _args_section(doc) or doc.split("Attributes:", 1)[-1]
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    missing = [name for name in fields if name not in section]
    assert not missing, f"{cls.__qualname__}: the docstring does not describe {missing}"
