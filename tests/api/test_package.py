"""The infrastructure imports api.contract without the API's runtime dependencies."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_contract_imports_without_flask_or_numpy() -> None:
    code = "import sys, api.contract; heavy = {'flask', 'numpy', 'scipy'} & set(sys.modules); assert not heavy, heavy"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
