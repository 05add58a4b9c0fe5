import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


@pytest.fixture
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent (it sits beside a project checkout)")
    return SHARED_DATA


@pytest.fixture
def corpus():
    return CORPUS


@pytest.fixture
def edgebnn_cli(tmp_path):
    """Run the CLI in a subprocess exactly as a user would (from a scratch folder, so the
    installed package is what runs): returns the CompletedProcess."""
    import subprocess

    def run(*args, cwd=None):
        return subprocess.run([sys.executable, "-m", "edgebnn", *map(str, args)], capture_output=True, text=True,
                              cwd=cwd or tmp_path, timeout=300)
    return run
