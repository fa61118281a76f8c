"""The memory pre-check: it refuses in one line, names the options, and matches the real storage."""

import pytest
import torch

from specprobe.errors import SpecprobeError
from specprobe.models.registry import load_target
from specprobe.probing.engine import run_probe
from specprobe.probing.memory import accumulator_bytes, check_fits, memory_limit_bytes
from test_cli_bad_input import assert_one_line_error, run_cli


def test_cli_refuses_a_run_that_cannot_fit_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECPROBE_MEMORY_LIMIT", "100K")
    r = run_cli("grad-by-l", "--n-samples", "2", "--batch-size", "2", "--n-ensemble", "4", "--device", "cpu",
                "--out", tmp_path / "out", "--quiet")
    assert_one_line_error(r, "needs about", "of RAM is free", "--batch-size 1", "fewer variants", "--n-ensemble 2")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


def test_graph_size_is_checked_after_the_first_forward(monkeypatch):
    target = load_target(None)
    params = target.parameters()
    small = accumulator_bytes(params, 2) + sum(p.tensor.numel() * p.tensor.element_size() for p in params)
    monkeypatch.setenv("SPECPROBE_MEMORY_LIMIT", str(2 * small))  # the parameters' part fits, a 16-member graph cannot
    with pytest.raises(SpecprobeError, match="backward"):
        run_probe(target, n_samples=1, n_ensemble=16)
    monkeypatch.delenv("SPECPROBE_MEMORY_LIMIT")
    assert run_probe(target, n_samples=1, n_ensemble=2).provenance["n_samples_probed"] == 1


def test_estimated_accumulators_are_the_allocated_ones():
    from specprobe.probing.engine import _new_moments

    params = load_target(None).parameters()
    allocated = 0
    for m in _new_moments(params, list(range(len(params))), {}):  # what the engine allocates per variant
        allocated += sum(t.numel() * t.element_size() for t in (m._mean, m._kept_mean, m._m2) if t is not None)
    assert accumulator_bytes(params, 3) == 3 * allocated


def test_limit_parsing(monkeypatch):
    for text, expected in (("8G", 8 * 2**30), ("1.5M", int(1.5 * 2**20)), ("12345", 12345)):
        monkeypatch.setenv("SPECPROBE_MEMORY_LIMIT", text)
        assert memory_limit_bytes("cpu") == expected
    monkeypatch.setenv("SPECPROBE_MEMORY_LIMIT", "lots")
    with pytest.raises(SpecprobeError, match="SPECPROBE_MEMORY_LIMIT"):
        memory_limit_bytes("cpu")


def test_cuda_refusal_suggests_the_cpu(monkeypatch):
    monkeypatch.setenv("SPECPROBE_MEMORY_LIMIT", "1K")
    params = load_target(None).parameters()
    with pytest.raises(SpecprobeError, match="GPU memory.*--device cpu"):
        check_fits(device=torch.device("cuda"), params=params, n_variants=2, batch_size=1, n_ensemble=2)


def test_graph_size_does_not_depend_on_memory_freed_earlier():
    """The same forward measures the same graph the second time, when the first one's memory is free
    for reuse (the resident set alone grew ~10x less then, and the check let through what could not fit)."""
    import torch

    from specprobe.probing.memory import GraphSizer, _heap_in_use

    if _heap_in_use() is None:
        pytest.skip("no glibc mallinfo2 here: the resident-set fallback cannot see reused memory")
    sizes = []
    for _ in range(3):
        with GraphSizer(torch.device("cpu")) as sizer:
            x = [torch.randn(512, 512, requires_grad=True) for _ in range(16)]
            y = sum(xi.exp().sum() for xi in x)  # exp saves its output: one more tensor per leaf
        sizes.append(sizer.bytes)
        del x, y
    expected = 2 * 16 * 512 * 512 * 4  # the leaves and exp's saved outputs: 32 MiB
    assert all(0.95 * expected <= s <= 1.2 * expected for s in sizes), (sizes, expected)
