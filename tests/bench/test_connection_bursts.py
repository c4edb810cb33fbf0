"""bench/connection_bursts.py: the router's memory read after every burst of real connections, and the report."""

from pathlib import Path

import pytest

from bench.connection_bursts import main, report_lines, run


@pytest.mark.parametrize("half_heads", [False, True])
def test_each_burst_is_followed_by_a_reading_of_the_router(small_model: Path, half_heads: bool) -> None:
    figures = run(small_model, rounds=2, connections=20, half_heads=half_heads)
    assert len(figures) == 3
    for figure in figures:
        assert set(figure) == {"http"}
        assert figure["http"] > 0


def test_the_report_compares_the_first_and_the_last_burst() -> None:
    figures = [
        {"http": 80.0},
        {"http": 90.0},
        {"http": 91.5},
    ]
    lines = report_lines(figures)
    assert lines[0].startswith("round   0: http    80.0 MiB")
    assert lines[-1] == "HTTP router: first burst +10.0 MiB, last burst +1.5 MiB"


def test_zero_connections_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        main(["--model", "anything", "--connections", "0"])
