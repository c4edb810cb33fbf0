"""Every checkov check we skip is listed in one file, each with its reason."""

import re
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / ".checkov.yaml"


def test_every_skipped_check_states_its_reason() -> None:
    lines = CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    entries = [line for line in lines[start + 1 :] if line.startswith("  - ")]
    assert entries, "no skip entries parsed"
    for entry in entries:
        match = re.fullmatch(r"  - (CKV2?_AWS_\d+) # (.{20,})", entry)
        assert match, f"skip without a reason: {entry!r}"
