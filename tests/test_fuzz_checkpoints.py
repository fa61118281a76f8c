"""Fuzzing: 2000+ mutations of a valid checkpoint (bit flips, truncations, spliced and duplicated
sections, zeroed runs). Every outcome is a clean load or the clean one-line SpecprobeError — no
other exception, no hang (a per-case alarm)."""

import random
import signal

import pytest

from specprobe.errors import SpecprobeError
from specprobe.models.registry import describe_checkpoint, load_target

N_CASES = 2000
PER_CASE_SECONDS = 10


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch

    from specprobe.models.th.checkpoint import save_checkpoint
    from specprobe.models.th.model import StochasticSFNO

    torch.manual_seed(0)
    args = dict(img_size=(8, 16), grid="equiangular", scale_factor=1, in_chans=4, out_chans=3, embed_dim=4,
                num_layers=1, pos_embed="none", use_mlp=False)
    model = StochasticSFNO(args, n_state=3, n_noise=1)
    path = tmp_path_factory.mktemp("fuzz") / "tiny.pt"
    save_checkpoint(path, model, channel_names=["h", "u", "v"], units=["m", "m/s", "m/s"],
                    means=[0.0, 0.0, 0.0], stds=[1.0, 1.0, 1.0], data_grid="equiangular")
    return path


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "flips", "truncate", "splice", "duplicate", "zero", "byte"])
    if kind == "flip":
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == "flips":
        for _ in range(rng.randint(2, 64)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "splice":
        i, j = sorted(rng.sample(range(len(b)), 2))
        k = rng.randrange(len(b) - (j - i) + 1)
        b[k:k + (j - i)] = data[i:j]
    elif kind == "duplicate":
        i, j = sorted(rng.sample(range(len(b)), 2))
        b[j:j] = data[i:min(j, i + 4096)]
    elif kind == "zero":
        i = rng.randrange(len(b))
        n = rng.randint(1, 512)
        b[i:i + n] = bytes(min(n, len(b) - i))
    else:
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256)
    return bytes(b)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def test_mutated_checkpoints_load_cleanly_or_fail_cleanly(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    rng = random.Random(1234)
    outcomes = {"loaded": 0, "error": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(N_CASES):
            path = tmp_path / "m.pt"
            path.write_bytes(mutate(data, rng))
            signal.alarm(PER_CASE_SECONDS)
            try:
                describe_checkpoint(path)
                load_target(path)
                outcomes["loaded"] += 1
            except SpecprobeError as e:
                msg = str(e)
                assert msg and "\n" not in msg.strip(), f"case {case}: multi-line error {msg!r}"
                outcomes["error"] += 1
            except _Hang:
                pytest.fail(f"case {case}: no answer within {PER_CASE_SECONDS} s")
            except Exception as e:  # noqa: BLE001 - this is the failure the test exists for
                pytest.fail(f"case {case}: {type(e).__name__} escaped: {e}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert outcomes["loaded"] + outcomes["error"] == N_CASES
    # both outcomes occur: bit flips in tensor data still load; broken structure is refused
    assert outcomes["loaded"] > 0 and outcomes["error"] > 0, outcomes
