"""The benchmark scripts at toy size, so they cannot rot. No timing assertions: only that each
script runs end to end on real fme checkpoints and reports well-formed, plausible figures."""

import math
import pathlib
import sys

import pytest

from conftest import require

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def tiny_ace(tmp_path_factory):
    require("fme")
    from ace_like import IN_NAMES, OUT_NAMES, build_checkpoint

    assert (len(IN_NAMES), len(OUT_NAMES)) == (40, 44)
    path, n_params = build_checkpoint(tmp_path_factory.mktemp("ace") / "tiny.tar", nlat=16, nlon=32, embed_dim=8,
                                      num_layers=2, noise_embed_dim=4)
    assert n_params > 0
    return str(path)


def test_time_ratio_script(tiny_ace):
    from bench_time import measure

    r = measure(tiny_ace, ks=(2, 3), n_samples=1, repeats=1)
    for k in (2, 3):
        v = r["k"][k]
        assert v["probe_s"] > 0 and v["fme_s"] > 0 and math.isfinite(v["ratio_median"])
        assert v["ratio_min"] <= v["ratio_median"] <= v["ratio_max"]


def test_memory_script_measures_both_sides_in_fresh_processes(tiny_ace):
    from bench_memory import run_fresh

    step = run_fresh("fme-step", tiny_ace, n_samples=1)
    probe = run_fresh("probe", tiny_ace, variants=1, n_samples=1)
    for r in (step, probe):
        assert r["peak_bytes"] >= r["loaded_bytes"] > 50 * 2**20  # torch alone is more than that
    assert probe["n_params"] == step["n_params"]


def test_scaling_script(tiny_ace):
    from bench_scaling import scale

    rows = scale(["16x32x8"], [2], n_samples=1, repeats=1, layers=2, memory=False)
    assert [r["k"] for r in rows] == [2] and rows[0]["probe_s_per_sample"] > 0


def test_cli_script_times_help():
    from bench_cli import measure

    r = measure(("help",), runs=1)["help"]
    assert r["wall_s"][0] > 0 and r["peak_bytes"][1] > 0


def test_backward_breakdown_script(tiny_ace):
    from bench_backward import measure

    r = measure(tiny_ace, ks=(2, 3), repeats=1)
    assert all(v > 0 for v in r["seconds"].values())
    for k in (2, 3):
        f = r["floor_ratio"][k]
        assert set(f) == {"all", "baseline", "none", "batched_spectral"} and all(v > 0 and math.isfinite(v) for v in f.values())
        assert r["batched_max_rel_diff"][k] < 1e-5  # one batched backward gives the K single gradients
