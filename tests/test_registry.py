"""The registry routes every supported spelling of a torch-harmonics SFNO file to its adapter."""

import json

import pytest
import torch

from specprobe.errors import CheckpointError
from specprobe.models.registry import describe_checkpoint, load_target
from specprobe.models.th.checkpoint import default_checkpoint_path
from specprobe.models.safe_load import load_checkpoint_file


@pytest.mark.parametrize("wrap,sidecar_name", [("bare", "plain.pt.json"), ("state_dict", "plain.json"),
                                               ("ddp", "plain.pt.json")])
def test_plain_state_dicts_are_routed(tmp_path, wrap, sidecar_name):
    from specprobe.models.th.model import build_sfno

    args = dict(load_checkpoint_file(default_checkpoint_path())["model"]["args"], in_chans=3)  # no noise channels
    sd = build_sfno(args).state_dict()
    if wrap == "state_dict":
        sd = {"state_dict": sd}
    elif wrap == "ddp":
        sd = {f"module.{k}": v for k, v in sd.items()}
    torch.save(sd, tmp_path / "plain.pt")
    (tmp_path / sidecar_name).write_text(json.dumps(args))
    assert describe_checkpoint(tmp_path / "plain.pt")["family"] == "torch-harmonics-sfno"
    target = load_target(tmp_path / "plain.pt")
    assert sum(p.per_degree for p in target.parameters()) == 4


def test_plain_state_dict_without_sidecar_says_what_is_missing(tmp_path):
    """The bundled SFNO's weights: its position embedding tells nlat = 64 and scale factor 1, nothing tells
    nlon; given that, its 7 input channels (4 noise) make it no state-to-state model without its wrapper."""
    torch.save(load_checkpoint_file(default_checkpoint_path())["state_dict"], tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"missing the data grid \(nlon: --grid NLATxNLON.*plain.pt.json or plain.json"):
        load_target(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="in_chans=7 != out_chans=3"):
        load_target(tmp_path / "plain.pt", grid="64x128")


def test_declared_huge_grid_is_refused_before_allocation(tmp_path):
    obj = load_checkpoint_file(default_checkpoint_path())
    obj["model"]["args"]["img_size"] = [60_000, 120_000]
    obj["grid"].update(nlat=60_000, nlon=120_000)
    torch.save(obj, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match=r"needs about [\d,.]+ GiB.*refusing before allocation"):
        load_target(tmp_path / "huge.pt")
