"""Atomic output files survive a SIGKILL mid-write; oversized grids are refused before allocation;
every torch.load in the package goes through the safe loader."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import specprobe
from specprobe.errors import CheckpointError
from specprobe.models.resources import check_grid_fits, sht_weight_bytes

WRITER = r"""
import sys, itertools
from specprobe.report.files import write_json
path = sys.argv[1]
for i in itertools.count():
    # ~8 MB per write so a kill lands mid-write most of the time
    write_json(path, {"generation": i, "payload": [i] * 2_000_000})
    print(i, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_writer_leaves_old_or_new_file(tmp_path, sig):
    path = tmp_path / "result.json"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline()  # at least one complete write
        time.sleep(0.15)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    obj = json.loads(path.read_text())  # complete JSON, never a partial file
    assert obj["payload"][-1] == obj["generation"]
    leftovers = [p for p in tmp_path.iterdir() if p.name != "result.json"]
    # SIGKILL can leave the hidden temporary file behind, but never a partial result.json.
    assert all(p.name.startswith(".result.json.") for p in leftovers)


def test_oversized_grid_is_refused_with_an_estimate():
    with pytest.raises(CheckpointError, match=r"needs about [\d,.]+ GiB .* refusing before allocation"):
        check_grid_fits(100_000, 200_000)
    check_grid_fits(64, 128)  # small grids pass
    assert sht_weight_bytes(64, 128) == 65 * 64 * 64 * 8
    with pytest.raises(CheckpointError, match="nlat"):
        check_grid_fits(-3, 128)


def test_every_torch_load_is_the_safe_one():
    root = Path(specprobe.__file__).parent
    offenders = []
    for f in root.rglob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"torch\.load\(", line) and f.name != "safe_load.py":
                offenders.append(f"{f.relative_to(root)}:{i}")
            if re.search(r"weights_only\s*=\s*False", line) and f.name != "safe_load.py":
                offenders.append(f"{f.relative_to(root)}:{i}")
    assert not offenders, offenders
