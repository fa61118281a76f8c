"""``describe_fme_checkpoint`` needs no fme: run it in a process where ``import fme`` fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import require

require("fme")

from fme_fixtures import build_stepper, one_thread, save_current, save_legacy, trained_run  # noqa: E402
from specprobe.models.fme.adapter import FME_MISSING, load_fme_target  # noqa: E402
from specprobe.models.fme.describe import is_fme_checkpoint  # noqa: E402

pytestmark = pytest.mark.oracle

NO_FME = textwrap.dedent("""
    import json, sys
    sys.modules["fme"] = None  # `import fme` now raises ImportError
    import specprobe.models.fme.adapter as adapter
    assert "torch" not in sys.modules, "importing the adapter must not import torch"
    from specprobe.errors import SpecprobeError
    from specprobe.models.safe_load import load_checkpoint_file
    from specprobe.models.fme.describe import describe_fme_checkpoint, is_fme_checkpoint
    out = {}
    for path in sys.argv[1:]:
        obj = load_checkpoint_file(path)
        assert is_fme_checkpoint(obj)
        out[path] = describe_fme_checkpoint(obj, path)
    try:
        adapter.load_fme_target(sys.argv[1])
    except SpecprobeError as e:
        out["error"] = str(e)
    out["fme_modules"] = sorted(k for k, v in sys.modules.items() if k.split(".")[0] == "fme" and v is not None)
    print(json.dumps(out, default=str))
""")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    with one_thread():
        run = trained_run(str(tmp_path_factory.getbasetemp() / "fme_trained"))
        d = tmp_path_factory.mktemp("describe")
        current = save_current(d / "best_inference_ckpt.tar", build_stepper(
            "NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4, "spectral_lora_rank": 2,
                                     "filter_preserves_global_mean": True}))
        legacy, _ = save_legacy(d / "legacy.tar", "SphericalFourierNeuralOperatorNet", {"embed_dim": 8, "num_layers": 1})
    return [run / "training_checkpoints" / "ckpt.tar", current, legacy]


def test_describe_without_fme(files):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", NO_FME, *map(str, files)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["fme_modules"] == []
    assert out["error"] == FME_MISSING
    trained = out[str(files[0])]
    assert trained["format"] == "fme-current" and trained["optimizer_state"] and trained["ema_present"]
    assert trained["variable_metadata"]["h"]["units"] == "m"
    assert trained["training_loss"]["weights"] == {"h": 2.0}
    assert out[str(files[2])]["format"] == "fme-legacy"
    assert out[str(files[2])]["grid"]["nlat"] == 16 and out[str(files[2])]["timestep_seconds"] == 21600.0
    with one_thread():
        for path in files:  # the static guesses agree with the live fme modules
            live = load_fme_target(path)
            static = out[str(path)]
            assert {(p["name"], p["degree_axis"], p["l0_bypassed"]) for p in static["spectral_parameters"]} == \
                {(p.name, p.degree_axis, p.l0_bypassed) for p in live.parameters() if p.per_degree}
            assert static["channel_names"] == live.channel_names


@pytest.mark.parametrize("obj", [None, [], {"stepper": 3}, {"stepper": {"config": {}}},
                                 {"blocks.0.global_conv.weight": 1}, {"model": {}, "config": {}}])
def test_not_fme(obj):
    assert not is_fme_checkpoint(obj)
