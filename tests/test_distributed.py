"""torchrun on CPU (issue 13): 2 gloo ranks, spawned here, give the 1-process numbers.

Each run is a real ``python -m torch.distributed.run --standalone --nproc-per-node 2 -m specprobe``
launch (2 processes of one CPU thread each); the reference is the same command in one process.
Every float in the result files is compared, per degree, to its stated precision (1e-6 relative;
the GSNR to its accumulator bound, see ``tolerance``); only provenance may
differ. The samples are split by batch index, so the comparison also proves that the per-sample
rows come back in batch order (percentiles and means of rows are order-free, the row order of the
per-batch seeds is not).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specprobe.models.registry import default_checkpoint

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = ["--threads", "1", "--device", "cpu"]


def torchrun(*args, env_extra=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SPECPROBE_DIST_TIMEOUT": "180",
           **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "specprobe", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def one_process(*args):
    """The reference: the same command, in this process (one thread, as the ranks)."""
    from typer.testing import CliRunner

    from specprobe.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.stderr, r.exception)
    return r


def elements_per_degree(result: dict) -> int:
    """Real elements at one degree, over every per-degree parameter (complex counts twice)."""
    n = 0
    for p in result["provenance"].get("spectral_parameters", []):
        if p["degree_axis"] is not None:
            size = math.prod(p["shape"]) // p["shape"][p["degree_axis"]]
            n += size * (2 if "complex" in p["dtype"] else 1)
    return max(n, 1)


def tolerance(path: str, value: float, n_elements: int) -> float:
    """The ranks see bit-identical per-sample gradients (batches of 1, one thread each, the same CPU),
    so every number agrees to the precision of its accumulator (specprobe.probing.accumulate):
    1e-6 relative; the per-degree GSNR to gsnr_relative_precision of its largest element, which is at
    most n_elements times the degree's mean."""
    from specprobe.probing.accumulate import gsnr_relative_precision

    if "gsnr" in path and "stderr" not in path:
        return max(1e-6, gsnr_relative_precision(n_elements * abs(value)))
    return 1e-6


def assert_same_numbers(one, two, path="", skip=("provenance",), n_elements=None):
    """Every number in ``two`` equals ``one`` to its stated precision (:func:`tolerance`; NaN, written
    null, matches null)."""
    if n_elements is None:
        n_elements = elements_per_degree(one) if isinstance(one, dict) and "provenance" in one else 1
    if isinstance(one, dict):
        assert set(one) - set(skip) == set(two) - set(skip), path
        for k in one:
            if k not in skip:
                assert_same_numbers(one[k], two[k], f"{path}/{k}", skip, n_elements)
    elif isinstance(one, list):
        assert len(one) == len(two), path
        for i, (a, b) in enumerate(zip(one, two)):
            assert_same_numbers(a, b, f"{path}[{i}]", skip, n_elements)
    elif isinstance(one, float) and isinstance(two, (float, int)):
        rel = tolerance(path, one, n_elements)
        assert math.isclose(one, two, rel_tol=rel, abs_tol=1e-300), (path, one, two, rel)
    else:
        assert one == two, (path, one, two)


def assert_two_gloo_ranks(provenance):
    d = provenance["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo"
    assert [s.split(":")[0] for s in d["devices"]] == ["rank 0", "rank 1"] and all(" cpu " in s for s in d["devices"])


def test_grad_by_l_on_two_ranks_equals_one_process(tmp_path):
    # --moment-elements 100 (of 512 per degree): the sampled second moments reduce over ranks too
    args = ["grad-by-l", "--n-samples", "4", "--batch-size", "1", "--whitening", "per_sample:gamma=0.8",
            "--moment-elements", "100", "--no-timestamp", *ONE_THREAD]
    one_process(*args, "--quiet", "--out", tmp_path / "one")
    r = torchrun(*args, "--json", "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)  # rank 0 alone printed: one JSON document, nothing else
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert printed == two
    assert_same_numbers(one, two)
    assert two["provenance"]["n_samples_probed"] == 4
    assert len(two["provenance"]["moment_sampling"]["sampled_parameters"]) == 4
    assert max(two["gsnr_stderr_by_l"]["baseline"]) > 0
    assert_two_gloo_ranks(two["provenance"])
    # the numbers compared are real ones: a gradient at every degree, a spread of samples
    total = two["grad_by_l"]["baseline"]["total"]
    assert all(v is not None and v > 0 for v in total[1:])
    factor = two["whitening_factor_by_l"]["per_sample(gamma=0.8,eps_frac=0.02)"]["h"]
    assert any(hi > lo for lo, hi in zip(factor["p10"], factor["p90"]))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_sweep_with_uneven_batches_on_two_ranks_equals_one_process(tmp_path):
    # 3 samples in batches of 2: rank 0 probes 2 samples, rank 1 one.
    args = ["sweep", "--gamma", "0.5,1", "--eps-frac", "0.02", "--n-samples", "3", "--batch-size", "2",
            "--no-timestamp", *ONE_THREAD]
    one_process(*args, "--out", tmp_path / "one")
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    two = json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert_same_numbers(one, two)
    assert_two_gloo_ranks(two["provenance"])
    assert len(two["settings"]) == 2 and two["probe"]["provenance"]["n_samples_probed"] == 3


def test_coupling_on_two_ranks_equals_one_process(tmp_path):
    # 3 samples: rank 0 sums samples 0 and 2, rank 1 sample 1, so the sums run in another order than in
    # one process; they agree to float rounding of a few terms, inside 1e-6
    args = ["coupling", "--n-samples", "3", "--batch-size", "1", "--n-bands", "4", *ONE_THREAD]
    one_process(*args, "--out", tmp_path / "one")
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    one = json.loads((tmp_path / "one" / "coupling.json").read_text())
    two = json.loads((tmp_path / "two" / "coupling.json").read_text())
    assert_same_numbers(one, two)
    assert_two_gloo_ranks(two["provenance"])
    assert any(v > 0 for v in two["variants"]["baseline"]["full"])


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory):
    """The bundled model's format and shape with fresh weights: a series whose two results differ."""
    import torch

    from specprobe.models.th.checkpoint import build_model, read_checkpoint, save_checkpoint

    spec = read_checkpoint(default_checkpoint())
    torch.manual_seed(7)
    model = build_model(spec)
    fresh = type(model.sfno)(**{k: tuple(v) if k == "img_size" else v for k, v in spec.args.items()})
    model.sfno.load_state_dict(fresh.state_dict())
    path = tmp_path_factory.mktemp("series") / "fresh.pt"
    save_checkpoint(path, model, channel_names=spec.channel_names, units=spec.units, means=spec.means,
                    stds=spec.stds, data_grid=spec.grid["type"], training={"steps": 0})
    return path


def test_series_of_two_checkpoints_on_two_ranks_equals_one_process(tmp_path, second_checkpoint):
    args = ["grad-by-l", second_checkpoint, default_checkpoint(), "--n-samples", "2", "--no-timestamp",
            "--quiet", *ONE_THREAD]
    one_process(*args, "--out", tmp_path / "one")
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    skip = ("provenance", "checkpoint")  # the rows name the checkpoint files; numbers must match
    assert_same_numbers(json.loads((tmp_path / "one" / "series.json").read_text()),
                        json.loads((tmp_path / "two" / "series.json").read_text()), skip=skip)
    results = []
    for i, name in enumerate(("fresh", default_checkpoint().stem)):
        one = json.loads((tmp_path / "one" / f"{i:03d}_{name}" / "result.json").read_text())
        two = json.loads((tmp_path / "two" / f"{i:03d}_{name}" / "result.json").read_text())
        assert_same_numbers(one, two)
        assert two["provenance"]["distributed"]["split"] == f"checkpoints (this one on rank {i})"
        results.append(two["grad_by_l"]["baseline"]["total"])
    assert results[0] != results[1]  # each checkpoint's result is in its own place


def test_a_rank_that_fails_mid_run_fails_the_job_in_one_line(tmp_path):
    out = tmp_path / "out"
    r = torchrun("grad-by-l", "--n-samples", "4", "--quiet", "--out", out, *ONE_THREAD,
                 env_extra={"SPECPROBE_TEST_FAIL_RANK": "1"})
    assert r.returncode != 0
    ours = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("error:")]
    assert len(ours) == 1, r.stderr
    assert ours[0].startswith("error: rank 1: ") and "injected failure" in ours[0]
    assert r.stdout == ""
    assert not out.exists() or list(out.iterdir()) == []  # no result, no figure, no temporary file


def test_fme_checkpoint_on_two_ranks_equals_one_process(tmp_path):
    """fme must run whole on each rank (it would otherwise join specprobe's process group itself)."""
    from conftest import require

    require("fme")
    from fme_fixtures import build_stepper, one_thread, save_current

    with one_thread():
        ckpt = save_current(tmp_path / "ckpt.tar", build_stepper("NoiseConditionedSFNO", {
            "embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4}))
    args = ["grad-by-l", ckpt, "--n-samples", "2", "--no-timestamp", "--quiet", *ONE_THREAD]
    one_process(*args, "--out", tmp_path / "one")
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert_same_numbers(json.loads((tmp_path / "one" / "result.json").read_text()), two)
    assert_two_gloo_ranks(two["provenance"])
    assert two["provenance"]["family"] == "fme"


def test_a_bad_input_every_rank_meets_is_one_line_and_exit_2(tmp_path):
    r = torchrun("grad-by-l", "--n-samples", "999", "--quiet", "--out", tmp_path / "out", *ONE_THREAD)
    ours = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("error:")]
    assert len(ours) == 1, r.stderr
    assert ours[0].startswith("error: rank 0: ") and "n_samples=999" in ours[0] and ours[0].endswith("(rank 1 failed too)")
    assert r.returncode != 0 and "exitcode  : 2" in r.stderr  # torchrun's report: our exit status 2 for bad input


def test_not_launched_means_one_process(monkeypatch):
    from specprobe.probing import distributed as dist

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not dist.launched() and dist.start("cpu") is None and dist.current() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert dist.start("auto") is None  # torchrun with one process: nothing to split


def test_timeout_is_read_from_the_environment(monkeypatch):
    from specprobe.errors import SpecprobeError
    from specprobe.probing import distributed as dist

    monkeypatch.setenv(dist.TIMEOUT_ENV, "90")
    assert dist.timeout_seconds() == 90.0
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv(dist.TIMEOUT_ENV, bad)
        with pytest.raises(SpecprobeError, match=dist.TIMEOUT_ENV):
            dist.timeout_seconds()


def test_one_failure_line_names_every_failed_rank():
    from specprobe.probing.distributed import RankFailure

    assert str(RankFailure(1, "boom")) == "rank 1: boom"
    assert str(RankFailure(0, "bad", 2, (1, 3))) == "rank 0: bad (ranks 1, 3 failed too)"


def test_bucketed_sum_puts_every_tensor_back_in_place(tmp_path):
    """Buckets by dtype, split when full: each tensor gets its own slice back (one rank: sum = identity)."""
    import torch
    import torch.distributed as tdist

    from specprobe.probing.distributed import World

    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        w = World(rank=0, size=1, local_rank=0, local_size=1, backend="gloo", device=torch.device("cpu"),
                  timeout_s=30)
        g = torch.Generator().manual_seed(0)
        tensors = [torch.randn(5, 3, dtype=torch.float64, generator=g), torch.randn(7, generator=g),
                   torch.randn(2, 2, dtype=torch.complex64, generator=g), torch.randn(11, dtype=torch.float64, generator=g),
                   torch.randn(3, dtype=torch.float64, generator=g)]
        before = [t.clone() for t in tensors]
        w.sum_(tensors, bucket_elements=8)
        for t, b in zip(tensors, before):
            assert torch.equal(t, b)
    finally:
        tdist.destroy_process_group()


def test_lookahead_with_two_arms_on_two_ranks_equals_one_process(tmp_path):
    """Arm i on rank i % 2: baseline on rank 0, the whitened arm on rank 1, both from the same weights."""
    from test_lookahead import _small_train_file

    args = ["lookahead", "--train-data", _small_train_file(tmp_path), "--n-eval", "2", "--steps", "2",
            "--batch-size", "2", "--gamma", "0,0.5", "--repeats", "0", "--rollout-steps", "0", "--no-timestamp",
            *ONE_THREAD]
    one_process(*args, "--out", tmp_path / "one")
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    one = json.loads((tmp_path / "one" / "lookahead.json").read_text())
    two = json.loads((tmp_path / "two" / "lookahead.json").read_text())
    assert_same_numbers(one, two)
    assert_two_gloo_ranks(two["provenance"])
    assert [a["name"] for a in two["arms"]] == ["baseline", "per_sample(gamma=0.5,eps_frac=0.02)"]
    assert two["arms"][0]["train_loss"] != two["arms"][1]["train_loss"]  # each arm trained its own loss
