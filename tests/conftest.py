import importlib
import os

import pytest
import torch

# CI sets SPECPROBE_REQUIRE_ORACLES=1: then a missing oracle (fme, scoringrules, ducc0) fails the
# run instead of skipping, so the tests that matter can never be silently skipped.
REQUIRE_ORACLES = os.environ.get("SPECPROBE_REQUIRE_ORACLES") == "1"

# Tests run on the CPU even where a GPU is present: --device auto (the default of every command and
# of the Python API) follows $SPECPROBE_DEVICE, and subprocesses inherit it. Seeded, byte-identical
# and cross-process comparisons are statements about the CPU path; a test about CUDA names its device.
os.environ["SPECPROBE_DEVICE"] = "cpu"

# One intra-op thread in the test process: the tests are many small ops, and OpenMP threads spinning
# at barriers on a shared 2-core machine made them up to 100x slower (see specprobe.probing.engine).
torch.set_num_threads(1)


def require(module_name: str):
    """Import an oracle package; skip locally if absent, fail under CI."""
    if REQUIRE_ORACLES:
        return importlib.import_module(module_name)  # ImportError -> the test errors
    return pytest.importorskip(module_name)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if REQUIRE_ORACLES:
        skipped = terminalreporter.stats.get("skipped", [])
        if skipped:
            terminalreporter.write_line(f"SPECPROBE_REQUIRE_ORACLES=1 but {len(skipped)} tests were skipped", red=True)


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE_ORACLES:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and reporter.stats.get("skipped"):
            session.exitstatus = 1


@pytest.fixture(autouse=True)
def _one_thread():
    """The probe sizes torch's thread pool; put it back to one thread after each test."""
    yield
    torch.set_num_threads(1)
