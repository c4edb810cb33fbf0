"""The pinned cdktf CLI synthesizes this project the way users run it (`npx cdktf synth`)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPENV_TOOL = ROOT / ".cache" / "tools" / "pipenv" / "bin"


@pytest.mark.slow
def test_npx_cdktf_synth_writes_every_environment_stack(tmp_path: Path) -> None:
    cli = ROOT / "node_modules" / ".bin" / "cdktf"
    if not cli.exists():
        pytest.skip("cdktf CLI not installed: run `make setup` (npm ci installs cdktf-cli from package-lock.json)")
    path = f"{PIPENV_TOOL}{os.pathsep}{os.environ['PATH']}"
    if shutil.which("pipenv", path=path) is None:
        pytest.skip("pipenv not found: cdktf.json runs the app through pipenv; run `make setup`")
    env = dict(os.environ, PATH=path, PIPENV_VENV_IN_PROJECT="1", CHECKPOINT_DISABLE="1", IMAGE_TAG="a" * 40)
    result = subprocess.run(
        [str(cli), "synth", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for stack in ("recsys-dev", "recsys-prod"):
        synthesized = json.loads((tmp_path / "stacks" / stack / "cdk.tf.json").read_text())
        assert "aws_ecs_service" in synthesized["resource"]
