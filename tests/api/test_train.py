"""The training CLI: reads CSV and Parquet, evaluates on a per-user temporal split, publishes a version."""

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from api.model.loader import load_model
from api.training import cli as train_cli
from api.training.cli import TrainResult
from api.training.interactions import InteractionsError, read_interactions
from api.training.synthetic import SyntheticSpec, generate, write


def test_trainer_beats_the_popularity_baseline_on_synthetic_data(trained: TrainResult) -> None:
    evaluation = trained.evaluation
    assert evaluation is not None
    assert evaluation["protocol"]["split"] == "per_user_temporal"
    assert evaluation["users_evaluated"] > 500
    assert evaluation["als"]["precision_at_10"] > 1.3 * evaluation["popularity"]["precision_at_10"]
    assert evaluation["als"]["recall_at_10"] > 1.3 * evaluation["popularity"]["recall_at_10"]


def test_evaluation_and_parameters_are_stored_in_the_manifest(trained: TrainResult) -> None:
    manifest = json.loads((trained.version_dir / "manifest.json").read_text())
    assert manifest["evaluation"] == trained.evaluation
    assert manifest["algorithm"]["parameters"]["factors"] == 32
    assert manifest["counts"] == {"users": 1500, "items": 600, "seen": manifest["counts"]["seen"]}
    assert set(manifest["files"]) >= {"user_factors.npy", "item_factors.npy", "item_ids.npy"}


def test_cli_trains_from_csv_with_weights_and_prints_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = generate(SyntheticSpec(users=200, items=80, segments=4, seed=3)).drop_columns(["event_type"])
    table = table.append_column("weight", pa.array([2.0] * table.num_rows))
    csv_path = tmp_path / "interactions.csv"
    pa_csv.write_csv(table, csv_path)
    models = tmp_path / "models"
    train_cli.main(
        [
            "--interactions",
            str(csv_path),
            "--model-dir",
            str(models),
            "--factors",
            "8",
            "--version",
            "c1",
            "--tune-seconds",
            "2",
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(line["logger"] == "api.training" and line["level"] == "INFO" for line in lines)
    phases = [line["phase"] for line in lines]
    assert phases[0] == "read"
    assert {"evaluate", "fit", "publish", "retention"} <= set(phases)
    assert phases[-1] == "done"
    assert lines[-1]["peak_memory_mb"] > 0
    manifest = load_model(models).manifest
    assert manifest["version"] == "c1"
    assert manifest["algorithm"]["search"]["budget_seconds"] == 2
    assert manifest["algorithm"]["search"]["trials"][0]["factors"] == 8


def test_csv_ids_stay_text_even_when_numeric(tmp_path: Path) -> None:
    path = tmp_path / "numeric.csv"
    path.write_text("user_id,item_id,timestamp\n007,1,100\n7,01,200\n")
    data = read_interactions(path)
    assert data.user_ids.tolist() == [b"007", b"7"]
    assert data.item_ids.tolist() == [b"01", b"1"]


def test_iso_timestamps_and_event_weights_are_read(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp\nu,a,view,2026-01-01T00:00:00Z\nu,b,purchase,2026-01-02T00:00:00Z\n"
    )
    data = read_interactions(path)
    assert data.timestamps.tolist() == [1_767_225_600, 1_767_312_000]
    assert data.weights.tolist() == [1.0, 5.0]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("user_id,item_id\nu,a\n", "missing column(s) timestamp"),
        ("user_id,item_id,event_type,timestamp\nu,a,wishlist,1\n", "event types wishlist have no weight"),
        ("user_id,item_id,weight,timestamp\nu,a,-1,1\n", "weight must be positive"),
        ("user_id,item_id,timestamp\nu,a,yesterday\n", "neither epoch seconds nor ISO 8601"),
        ("user_id,item_id,timestamp\n,a,1\n", "ids that are empty"),
    ],
)
def test_bad_interaction_files_are_refused_with_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InteractionsError, match=re.escape(problem)):
        read_interactions(path)


def test_cli_reports_bad_input_on_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        train_cli.main(["--interactions", str(tmp_path / "absent.parquet"), "--model-dir", str(tmp_path / "m")])
    assert raised.value.code == 2
    error = json.loads(capsys.readouterr().err)
    assert error["level"] == "ERROR"
    assert error["message"] == f"{tmp_path / 'absent.parquet'}: no such file"


def test_synthetic_data_is_deterministic_and_seeded(tmp_path: Path) -> None:
    spec = SyntheticSpec(users=100, items=50, seed=5)
    assert generate(spec).equals(generate(spec))
    assert not generate(spec).equals(generate(SyntheticSpec(users=100, items=50, seed=6)))
    write(generate(spec), tmp_path / "s.parquet")
    assert len(read_interactions(tmp_path / "s.parquet")) == generate(spec).num_rows


def test_the_search_and_every_models_metrics_reach_get_v1_model(tmp_path: Path) -> None:
    from api.serving.app import create_app
    from api.serving.config import ApiConfig

    data = tmp_path / "interactions.parquet"
    write(generate(SyntheticSpec(users=300, items=120, segments=4, seed=6)), data)
    models = tmp_path / "models"
    train_cli.main(
        [
            *("--interactions", str(data), "--model-dir", str(models), "--version", "t1"),
            *("--factors", "8", "--iterations", "4", "--tune-seconds", "60", "--tune-trials", "3"),
            # Pinned: this test is about the ALS search, whichever family would win on this data.
            *("--family", "als"),
        ]
    )
    body = create_app(ApiConfig(model_dir=models)).test_client().get("/v1/model").get_json()
    search = body["algorithm"]["search"]
    assert [trial["number"] for trial in search["trials"]] == [0, 1, 2]
    assert search["stopped_by"] == "trial limit"
    evaluation = body["evaluation"]
    assert {"popularity", "als_defaults", "ease", "als", "chosen", "protocol"} <= set(evaluation)
    chosen = evaluation["chosen"]
    assert evaluation["als"]["precision_at_10"] == evaluation[chosen]["precision_at_10"]
    # The published setting is the trial with the best validation NDCG (the earliest on a tie).
    best = max(search["trials"], key=lambda trial: (trial["ndcg"], -trial["number"]))
    published = body["algorithm"]["parameters"]
    assert {key: published[key] for key in ("factors", "iterations", "weighting")} == {
        key: best[key] for key in ("factors", "iterations", "weighting")
    }
