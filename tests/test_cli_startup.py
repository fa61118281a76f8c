"""`specprobe --help` must be instant: no torch, torch-harmonics, matplotlib or fme at import."""

import subprocess
import sys


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from specprobe.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'grad-by-l' in r.output\n"
        "heavy = [m for m in ('torch', 'torch_harmonics', 'matplotlib', 'fme') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "specprobe", "--help"], capture_output=True, text=True, check=True)
    assert "grad-by-l" in out.stdout
