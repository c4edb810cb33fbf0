"""The bench starts the server as a task starts it: the app's bytecode compiled ahead, as the image compiles it."""

import importlib.util
from pathlib import Path

from bench.server import ROOT, compile_like_the_image


def _source_stamp(pyc: Path) -> tuple[int, int]:
    """The source mtime and size a .pyc was compiled from (PEP 552 header, timestamp-based)."""
    header = pyc.read_bytes()[:16]
    return int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")


def test_the_bench_compiles_every_app_source_to_current_bytecode() -> None:
    assert compile_like_the_image()
    sources = sorted((ROOT / "api").rglob("*.py"))
    assert len(sources) > 30
    for source in sources:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        stat = source.stat()
        assert _source_stamp(pyc) == (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF), source


def test_a_source_that_does_not_compile_fails_the_compile(tmp_path: Path) -> None:
    (tmp_path / "fine.py").write_text("VALUE = 1\n")
    (tmp_path / "broken.py").write_text("def broken(:\n")
    assert not compile_like_the_image(tmp_path)
    (tmp_path / "broken.py").unlink()
    assert compile_like_the_image(tmp_path)
