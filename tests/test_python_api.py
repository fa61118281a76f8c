"""The documented Python API works every time it is called, however it was imported (issue 12)."""

import subprocess
import sys

# Each snippet runs in a fresh interpreter, as a notebook kernel would.
SNIPPETS = {
    "attribute twice": (
        "import specprobe\n"
        "a = specprobe.probe(None, n_samples=1, threads=1)\n"
        "b = specprobe.probe(None, n_samples=1, threads=1)\n"
        "assert callable(specprobe.probe)\n"
    ),
    "from-import after a call": (
        "import specprobe\n"
        "a = specprobe.probe(None, n_samples=1, threads=1)\n"
        "from specprobe import probe\n"
        "b = probe(None, n_samples=1, threads=1)\n"
    ),
    "engine imported first": (
        "import specprobe.probing.api, specprobe.probing.engine\n"
        "from specprobe import probe\n"
        "a = probe(None, n_samples=1, threads=1)\n"
        "import specprobe\n"
        "b = specprobe.probe(None, n_samples=1, threads=1)\n"
    ),
}


def test_api_twice_in_a_fresh_interpreter():
    check = ("assert a.grad_by_l['baseline']['total'] == b.grad_by_l['baseline']['total']\n"
             "print('ok')\n")
    for name, code in SNIPPETS.items():
        out = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (name, out.stderr[-2000:])


def test_top_level_import_stays_light():
    code = "import sys, specprobe; assert callable(specprobe.probe); print(sorted(m for m in ('torch', 'matplotlib', 'fme') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_version_is_the_distribution_version():
    import tomllib
    from pathlib import Path

    import specprobe

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert specprobe.__version__ == pyproject["project"]["version"]
