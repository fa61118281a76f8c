"""The bad-input table, through the CLI: one line on stderr starting with `error:`, exit status 2,
no traceback, nothing half-written in --out."""

import json
import random
import os
import pytest
import torch
from typer.testing import CliRunner

from specprobe.cli import app
from specprobe.models.registry import default_checkpoint

FAST = ["--n-samples", "1", "--batch-size", "1", "--n-ensemble", "1", "--quiet"]


class _Run:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args):
    """In-process (no torch import per case); test_safety and test_cli_main cover real processes."""
    r = CliRunner().invoke(app, [str(a) for a in args])
    return _Run(r.exit_code, r.stdout, r.stderr)


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: "), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n.lower() in r.stderr.lower(), r.stderr


@pytest.fixture(scope="module")
def ckpt_bytes():
    return default_checkpoint().read_bytes()


def _bad_files(tmp_path, ckpt_bytes):
    d = tmp_path
    (d / "empty.pt").write_bytes(b"")
    (d / "half.pt").write_bytes(ckpt_bytes[: len(ckpt_bytes) // 2])
    (d / "random.pt").write_bytes(random.Random(0).randbytes(5000))
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    (d / "result.json").write_text(json.dumps({"schema": "specprobe.grad-by-l/1"}))
    torch.save({"just": torch.zeros(3)}, d / "unknown.pt")
    return {
        "missing": (d / "nope.pt", "no such file"),
        "directory": (d, "directory"),
        "empty": (d / "empty.pt", "empty"),
        "truncated": (d / "half.pt", "truncated"),
        "random": (d / "random.pt", "corrupt"),
        "png": (d / "image.png", "png"),
        "json": (d / "result.json", "json"),
        "unknown": (d / "unknown.pt", "unknown checkpoint family"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "truncated", "random", "png", "json", "unknown"])
def test_bad_checkpoint_files(tmp_path, ckpt_bytes, case):
    path, needle = _bad_files(tmp_path, ckpt_bytes)[case]
    out = tmp_path / "out"
    assert_one_line_error(run_cli("grad-by-l", path, "--out", out, *FAST), needle)
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))
    assert_one_line_error(run_cli("info", path), needle)


@pytest.mark.parametrize("args,needle", [
    (["--whitening", "per_sample:gamma=1.5"], "gamma"),
    (["--whitening", "per_sample:gamma=0"], "gamma"),
    (["--whitening", "per_sample:eps_frac=0"], "eps_frac"),
    (["--whitening", "per_sample:eps_frac=-1"], "eps_frac"),
    (["--whitening", "whiten_all"], "whitening"),
    (["--n-ensemble", "0"], "n_ensemble"),
    (["--n-samples", "0"], "n_samples"),
    (["--batch-size", "0"], "batch_size"),
    (["--device", "cuda"], "cuda"),
    (["--device", "tpu"], "--device"),
    (["--format", "bmp"], "--format"),
    (["--bands", "low=1:4"], "bands"),
])
def test_bad_options(tmp_path, args, needle):
    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    full = ["grad-by-l", "--out", out, *FAST]
    # later options win in typer for single-valued options
    assert_one_line_error(run_cli(*full, *args), needle)
    assert not (out / "result.json").exists()


def test_unwritable_out_dir(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits: use a path under a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "out"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    assert_one_line_error(run_cli("grad-by-l", "--out", target, *FAST), "--out")


def test_compare_wrong_schema_and_broken_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"schema": "specprobe.sweep/1"}))
    (tmp_path / "b.json").write_text("{not json")
    assert_one_line_error(run_cli("compare", tmp_path / "a.json"), "schema")
    assert_one_line_error(run_cli("compare", tmp_path / "b.json"), "not valid json")


def test_out_of_memory_suggests_batch_size(monkeypatch, tmp_path):
    import specprobe.probing.engine as engine

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(engine, "run_probe", boom)
    monkeypatch.setattr("specprobe.probing.api.run_probe", boom)
    r = CliRunner().invoke(app, ["grad-by-l", "--out", str(tmp_path / "o"), *FAST])
    assert r.exit_code == 2
    assert "error: out of memory" in r.output and "--batch-size" in r.output


def test_nan_weights_are_named(tmp_path):
    from specprobe.models.safe_load import load_checkpoint_file

    obj = load_checkpoint_file(default_checkpoint())
    sd = obj["state_dict"]
    name = next(k for k in sd if k.endswith("global_conv.weight"))
    sd[name] = sd[name].clone()
    sd[name].view(-1)[0] = float("nan")
    torch.save(obj, tmp_path / "nan.pt")
    assert_one_line_error(run_cli("grad-by-l", tmp_path / "nan.pt", "--out", tmp_path / "o", *FAST),
                          "nan or inf", name)


def _sample_variant(tmp_path, name, *, nan=False, grid=None, channels=None):
    from specprobe.models.safe_load import load_checkpoint_file
    from specprobe.models.th.checkpoint import default_sample_path
    from specprobe.models.th.data import save_sample

    obj = load_checkpoint_file(default_sample_path())
    states = obj["states"].clone()
    if nan:
        states[0, 1, 0, 3, 4] = float("nan")
    if grid is not None:
        states = states[..., : grid[0], : grid[1]]
    names = channels or obj["channels"]["names"]
    g = dict(obj["grid"]) if grid is None else {"nlat": grid[0], "nlon": grid[1], "type": obj["grid"]["type"]}
    return save_sample(tmp_path / name, states, channel_names=names, units=obj["channels"]["units"], grid=g,
                       timestep_hours=obj["timestep_hours"])


@pytest.mark.parametrize("kwargs,needle", [
    (dict(nan=True), "nan"),
    (dict(grid=(32, 64)), "grid"),
    (dict(channels=["h", "vort", "div"]), "channels"),
])
def test_bad_data(tmp_path, kwargs, needle):
    data = _sample_variant(tmp_path, "data.pt", **kwargs)
    r = run_cli("grad-by-l", "--data", data, "--out", tmp_path / "o", *FAST)
    assert_one_line_error(r, needle)
    assert not (tmp_path / "o" / "result.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "no such option"),
    (["grad-by-l", "--n-samples", "abc"], "--n-samples"),
    (["compare"], "missing argument"),
])
def test_usage_errors_are_one_line_from_the_real_entry_point(args, needle):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "specprobe", *args], capture_output=True, text=True, timeout=120)
    assert_one_line_error(r, needle)
