"""Read back an offline W&B run: its transaction log (run-ID.wandb) parsed with wandb's own protobuf
Record, plus the media files the run wrote. No login, no network.

wandb 0.31 writes the log from its Go core and no longer ships a Python reader, so the framing is
read here: a 7-byte file header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a
7-byte header (crc32, little-endian length, type: 1 full, 2 first, 3 middle, 4 last), the
LevelDB log layout.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:HEADER]
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos: pos + HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + HEADER: pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        else:
            pending += chunk


def _items_to_dict(items) -> dict:
    out: dict = {}
    for item in items:
        keys = list(item.nested_key) or [item.key]
        d = out
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = json.loads(item.value_json)
    return out


def _merge(into: dict, new: dict) -> None:
    """Updates name nested keys one record at a time: merge them, do not replace the parent."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


class OfflineRun:
    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        (self.log,) = self.dir.glob("run-*.wandb")
        self.config, self.summary, self.history, self.project = {}, {}, [], None
        for r in records(self.log):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                self.project = r.run.project
                _merge(self.config, _items_to_dict(r.run.config.update))
            elif kind == "config":
                _merge(self.config, _items_to_dict(r.config.update))
            elif kind == "summary":
                _merge(self.summary, _items_to_dict(r.summary.update))
            elif kind == "history":
                row = _items_to_dict(r.history.item)
                row["_step"] = r.history.step.num if r.history.HasField("step") else row.get("_step")
                self.history.append(row)

    def media(self, value: dict) -> Path:
        """The file a logged image or table points at."""
        return self.dir / "files" / value["path"]

    def table(self, value: dict) -> dict:
        return json.loads(self.media(value).read_text())


def offline_runs(root) -> list[OfflineRun]:
    return [OfflineRun(d) for d in sorted(Path(root).glob("**/offline-run-*")) if d.is_dir() and not d.is_symlink()]
