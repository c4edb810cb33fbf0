"""Keep the model directory from growing without bound: the newest versions stay, older ones go.

`current` and the version that was current before this training are never deleted, whatever their age: a serving
worker swaps to a new version only at its next poll, so until then it still reads the previous one, and over NFS
(EFS) a file removed by one client can become a stale handle (ESTALE) for another client that still has it open or
memory-mapped: the local "delete on last close" rule does not hold across clients.
"""

import json
import shutil
from pathlib import Path

from api.contract import CURRENT_POINTER
from api.model.format import MANIFEST_NAME

MIN_KEEP = 2


class RetentionError(ValueError):
    pass


def current_version(root: Path) -> str | None:
    pointer = root / CURRENT_POINTER
    if not pointer.is_symlink():
        return None
    return pointer.resolve().name


def published_versions(root: Path) -> list[Path]:
    """Complete versions (a directory with a manifest), oldest first by their manifest's created_at, then name."""
    versions = []
    for path in root.iterdir():
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        manifest = path / MANIFEST_NAME
        if not manifest.is_file():
            continue
        try:
            created = str(json.loads(manifest.read_text()).get("created_at", ""))
        except (OSError, ValueError):
            created = ""
        versions.append((created, path.name, path))
    return [path for _created, _name, path in sorted(versions)]


def check_keep(keep: int) -> None:
    if keep < MIN_KEEP:
        raise RetentionError(
            f"--keep-versions {keep} is below {MIN_KEEP}: the current version and the one before it always stay"
        )


def prune(root: Path, keep: int, protect: set[str]) -> list[str]:
    """Delete all but the newest `keep` versions, never one named in `protect` nor the current one; return names."""
    check_keep(keep)
    protected = set(protect)
    current = current_version(root)
    if current:
        protected.add(current)
    versions = published_versions(root)
    removed = []
    for path in versions[: max(len(versions) - keep, 0)]:
        if path.name in protected:
            continue
        # Renamed first so a reader never finds a half-deleted version under its real name.
        doomed = path.with_name(f".deleting.{path.name}")
        path.rename(doomed)
        shutil.rmtree(doomed)
        removed.append(path.name)
    return removed
