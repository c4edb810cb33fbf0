"""bench/inprocess.py: every endpoint's requests answered 200 in-process; figures are medians with spread."""

from pathlib import Path

import pytest

from bench.inprocess import main, report_lines, request_costs, spread


def test_each_endpoint_is_measured_over_answered_requests(small_model: Path) -> None:
    costs = request_costs(small_model, rounds=2, requests=40)
    assert set(costs) == {"health_live", "similar_items", "recommendations"}
    for figure in costs.values():
        assert 0 < figure["min"] <= figure["median"] <= figure["max"]


def test_the_spread_is_the_range_over_the_median() -> None:
    assert spread([1.0, 2.0, 4.0]) == {"median": 2.0, "min": 1.0, "max": 4.0, "spread": 1.5}


def test_the_report_names_the_ratios_to_liveness() -> None:
    figure = {"median": 100.0, "min": 90.0, "max": 110.0, "spread": 0.2}
    costs = {"health_live": figure, "similar_items": {**figure, "median": 125.0}, "recommendations": figure}
    lines = report_lines(costs, {"load_wall_s": {**figure, "median": 1.5}})
    assert "liveness / similar_items: 0.80 (extra 25.0 us)" in lines
    assert any(line.startswith("load_wall_s") and "1.500 s" in line for line in lines)


def test_a_model_directory_without_a_model_is_refused_with_the_loader_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        main(["--model", str(tmp_path / "missing"), "--rounds", "1", "--requests", "1"])


def test_zero_rounds_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        main(["--model", "anything", "--rounds", "0"])
