"""The monitor under faults: broken windows among good ones, against a real MLflow store, real
log files, a real HTTP endpoint taking the push, and a state write killed halfway."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs import load_config
from models.reference import log_reference
from monitoring import monitor
from serving.inference_log import prediction_frame, write_predictions
from tests.conftest import write_config
from tests.unit.monitoring.test_monitor import frame

REPO = Path(__file__).resolve().parents[3]
DAY = 24  # rows a day: one an hour


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cfg") / "monfault.yaml", name="monfault",
                        monitoring={"window": "1D", "min_window_rows": 10})  # fmt: skip
    return path, load_config(path)


@pytest.fixture(scope="module")
def registered(config, tracking, tmp_path_factory):
    """Version 1 with its reference and the champion alias; version 2 without a reference."""
    import mlflow

    from models.registry import experiment_id

    _, cfg = config
    client = mlflow.MlflowClient()
    experiment = experiment_id(cfg.name, tmp_path_factory.mktemp("artifacts"))
    client.create_registered_model(cfg.model_name)
    for version, reference in (("1", frame(cfg, 3000)), ("2", None)):
        with mlflow.start_run(experiment_id=experiment) as run:
            if reference is not None:
                log_reference(reference)
        created = client.create_model_version(
            cfg.model_name, f"runs:/{run.info.run_id}/model", run.info.run_id
        )
        assert str(created.version) == version
    client.set_registered_model_alias(cfg.model_name, "champion", "1")
    return cfg


def log_day(cfg, root: Path, day: str, version: str, rows: pd.DataFrame) -> None:
    """One day of predictions, as its own log file (its columns are what was logged)."""
    features = rows.drop(columns=["label", "score"])
    write_predictions(root, cfg.model_name, prediction_frame(
        model=cfg.model_name, version=version, features=features, scores=rows["score"],
        decisions=(rows["score"] > 0.5).astype(int),
        request_ids=[f"{day}-{i}" for i in range(len(rows))],
        timestamps=pd.date_range(day, periods=len(rows), freq="1h", tz="UTC"),
    ))  # fmt: skip


class Pushgateway:
    """A real HTTP endpoint that keeps what is PUT to it."""

    def __init__(self) -> None:
        bodies = self.bodies = {}

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                bodies[self.path] = self.rfile.read(int(self.headers["Content-Length"])).decode()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def pushgateway():
    gateway = Pushgateway()
    yield gateway
    gateway.server.shutdown()
    gateway.server.server_close()


def test_broken_windows_are_reported_and_the_good_ones_still_pushed(
    config, registered, tmp_path, monkeypatch, capsys, pushgateway
):
    path, cfg = config
    monkeypatch.chdir(tmp_path)  # the monitor's MLflow run keeps its artifacts beside the store
    root, out = tmp_path / "log", tmp_path / "reports"
    good = frame(cfg, DAY, seed=1)
    amount_nan = frame(cfg, DAY, seed=2).assign(amount=np.nan)
    corrupt = frame(cfg, DAY, seed=3).assign(score=np.nan)  # no score: cannot be assessed
    no_channel = frame(cfg, DAY, seed=4).drop(columns="channel")  # absent from the logged rows
    log_day(cfg, root, "2026-07-01", "1", good)
    log_day(cfg, root, "2026-07-02", "1", amount_nan)
    log_day(cfg, root, "2026-07-03", "1", corrupt)
    log_day(cfg, root, "2026-07-04", "2", good)  # version 2 has no drift reference
    log_day(cfg, root, "2026-07-05", "1", no_channel)

    reports = monitor.run_monitor(
        cfg, log_root=root, out_root=out, pushgateway=pushgateway.url, evidently=False
    )  # Evidently's HTML (slow) is covered in test_monitor.py
    assert [r.failed for r in reports] == [False, False, True, True, False]
    monitor._print(reports, cfg.evaluation.primary_metric)
    printed = capsys.readouterr().out

    folder = out / cfg.name
    summaries = {
        p.parent.name: json.loads(p.read_text()) for p in folder.glob(f"*/{monitor.SUMMARY_FILE}")
    }
    assert sorted(summaries) == [f"2026070{d}T0000_v{v}" for d, v in
                                 ((1, 1), (2, 1), (3, 1), (4, 2), (5, 1))]  # fmt: skip
    errors = {name: s["error"] for name, s in summaries.items() if s["error"]}
    assert errors.keys() == {"20260703T0000_v1", "20260704T0000_v2"}
    assert "'score' in the current data has no value" in errors["20260703T0000_v1"]
    assert errors["20260704T0000_v2"].startswith("MissingReferenceError: ")
    assert summaries["20260703T0000_v1"]["drift"] == {}  # nothing measured, not "no drift"
    # version 1 was registered without a model: its windows are assessed, their attribution
    # drift is unavailable with the reason (not zeros, not "unchanged")
    for name in ("20260701T0000_v1", "20260702T0000_v1", "20260705T0000_v1"):
        attribution = summaries[name]["attribution"]
        assert attribution["state"] == "unavailable", name
        assert "version 1 of 'monfault-classifier'" in attribution["error"], attribution
    assert summaries["20260703T0000_v1"]["attribution"] == {}

    def missing(name: str) -> dict[str, bool]:
        columns = summaries[name]["drift"]["columns"]
        assert len(columns) == len(cfg.features)  # every feature still tested
        return {c["column"]: c["drifted"] for c in columns if c["method"] == "missing"}

    assert missing("20260701T0000_v1") == {}
    assert missing("20260702T0000_v1") == {"amount": True}
    assert missing("20260705T0000_v1") == {"channel": True}
    assert summaries["20260705T0000_v1"]["missing_values"]["channel"] == DAY

    # the run's output names both failures; the table marks them and the missing features
    assert re.search(r"2026-07-03T00:00:00\+00:00 +1 +24 FAILED: EmptyColumnError", printed)
    assert re.search(r"2026-07-04T00:00:00\+00:00 +2 +24 FAILED: MissingReferenceError", printed)
    assert "MISSING channel" in printed and "MISSING amount" in printed

    # history: the three assessed windows; the latest window of the champion was pushed
    history = json.loads((folder / monitor.HISTORY_FILE).read_text())
    assert [(w["start"][:10], w["version"]) for w in history] == [
        ("2026-07-01", "1"), ("2026-07-02", "1"), ("2026-07-05", "1")]  # fmt: skip
    (body,) = pushgateway.bodies.values()
    assert 'mlops_feature_drift_detected{feature="channel"} 1.0' in body
    assert f'mlops_input_missing_values{{feature="channel"}} {float(DAY)}' in body
    assert "mlops_monitor_last_success_timestamp_seconds" in body
    assert "mlops_attribution_available{} 0.0" in body
    assert "mlops_attribution_rank_changed" not in body and "mlops_attribution_mean_abs" not in body
    assert "NO-ATTRIBUTION" in printed
    assert [f.name for f in folder.iterdir() if f.name.startswith(".")] == []  # no temp files

    # MLflow: the failures are recorded with the run
    import mlflow

    (run,) = mlflow.search_runs(
        experiment_names=[cfg.name], filter_string="tags.kind = 'monitoring'", output_format="list"
    )
    assert run.data.tags["failed_windows"] == "2"
    failed = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/failed_windows.json")
    assert [w["start"][:10] for w in failed["windows"]] == ["2026-07-03", "2026-07-04"]

    # a later run where every window fails: exit non-zero, each window named, history kept
    bad_root = tmp_path / "bad_log"
    log_day(cfg, bad_root, "2026-07-06", "1", corrupt)
    log_day(cfg, bad_root, "2026-07-07", "2", good)
    before = (folder / monitor.HISTORY_FILE).read_bytes()
    assert (
        monitor.main(["--project", str(path), "--log-path", str(bad_root), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "every window of monfault-classifier failed (2)" in err
    assert "2026-07-06T00:00:00+00:00 v1: EmptyColumnError" in err
    assert "2026-07-07T00:00:00+00:00 v2: MissingReferenceError" in err
    assert "next: fix the cause named above" in err
    assert (folder / monitor.HISTORY_FILE).read_bytes() == before


def test_an_unreadable_history_is_set_aside_not_fatal(tmp_path):
    (tmp_path / monitor.HISTORY_FILE).write_text('[{"start": "2026-07-01", "vers')  # torn write
    report = monitor.WindowReport(project="p", model="m", version="1", start="2026-07-02",
                                  end="2026-07-03", rows=5, labelled_rows=0, drift={},
                                  prediction_drift={}, missing_values={},
                                  unseen_categories={})  # fmt: skip
    monitor._write_history(tmp_path, [report])
    assert [w["start"] for w in json.loads((tmp_path / monitor.HISTORY_FILE).read_text())] == [
        "2026-07-02"
    ]
    (aside,) = tmp_path.glob(f"{monitor.HISTORY_FILE}.unreadable-*")
    assert aside.read_text().startswith('[{"start": "2026-07-01"')


WRITER = """
import resource, signal, sys
from pathlib import Path
from monitoring.monitor import WindowReport, _write_history
if sys.argv[2] == "kill":  # Python ignores SIGXFSZ (the write fails, as on a full disk)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
reports = [WindowReport(project="p", model="m", version="2", start=f"2026-07-{day:02d}",
                        end="", rows=2, labelled_rows=0, drift={"pad": "x" * 100_000},
                        prediction_drift={}, missing_values={}, unseen_categories={})
           for day in range(1, 11)]
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # no file may pass 200 kB
_write_history(Path(sys.argv[1]), reports)
"""


@pytest.mark.parametrize("interruption", ["kill", "error"])
def test_an_interrupted_history_write_leaves_the_previous_file_intact(tmp_path, interruption):
    """The 1 MB rewrite stops at 200 kB (SIGXFSZ kills the writer, or the write fails)."""
    previous = monitor.WindowReport(project="p", model="m", version="1", start="2026-06-30",
                                    end="", rows=1, labelled_rows=0, drift={},
                                    prediction_drift={}, missing_values={},
                                    unseen_categories={})  # fmt: skip
    monitor._write_history(tmp_path, [previous])
    before = (tmp_path / monitor.HISTORY_FILE).read_bytes()
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path), interruption],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if interruption == "kill":
        assert writer.returncode == -signal.SIGXFSZ, writer.stderr
    else:
        assert writer.returncode == 1 and "File too large" in writer.stderr, writer.stderr
        # the failed write cleaned up after itself
        assert [p.name for p in tmp_path.iterdir()] == [monitor.HISTORY_FILE]
    assert (tmp_path / monitor.HISTORY_FILE).read_bytes() == before


def test_a_window_is_assessed_again_only_when_its_rows_labels_or_config_changed(
    registered, tmp_path, monkeypatch
):
    import mlflow

    from serving.inference_log import label_frame, write_labels

    cfg = registered
    monkeypatch.chdir(tmp_path)
    root, out = tmp_path / "log", tmp_path / "reports"
    log_day(cfg, root, "2026-07-01", "1", frame(cfg, DAY, seed=1))
    log_day(cfg, root, "2026-07-02", "1", frame(cfg, DAY, seed=2))
    assessed: list[int] = []
    real_assess = monitor.assess

    def counted_assess(rows, *args):  # the real assessment, counted
        assessed.append(len(rows))
        return real_assess(rows, *args)

    monkeypatch.setattr(monitor, "assess", counted_assess)

    def run(config=cfg, **options) -> list[monitor.WindowReport]:
        assessed.clear()
        return monitor.run_monitor(config, log_root=root, out_root=out, evidently=False, **options)

    first = run()
    assert len(assessed) == 2 and all(r.basis for r in first)
    again = run()
    assert assessed == []  # nothing changed: both taken from their summaries, as they were
    assert [asdict(r) for r in again] == [asdict(r) for r in first]
    runs = mlflow.search_runs(
        experiment_names=[cfg.name], output_format="list",
        filter_string="tags.kind = 'monitoring'", order_by=["start_time DESC"],
    )  # fmt: skip
    latest, previous = runs[0], runs[1]  # their files went to MLflow with the first run only
    assert latest.data.tags["unchanged_windows"] == "2"
    assert mlflow.MlflowClient().list_artifacts(latest.info.run_id, "windows") == []
    assert len(mlflow.MlflowClient().list_artifacts(previous.info.run_id, "windows")) == 2

    labels = label_frame([f"2026-07-02-{i}" for i in range(DAY)], [i % 2 for i in range(DAY)])
    write_labels(root, cfg.model_name, labels)  # late labels for the second day only
    after_labels = run()
    assert len(assessed) == 1
    assert [r.labelled_rows for r in after_labels] == [0, DAY]
    # labels read as integers (all rows labelled) or as floats (some not yet) hash alike
    rows = frame(cfg, DAY, seed=2).assign(label=1)
    basis = monitor.window_basis(rows, cfg)
    assert basis == monitor.window_basis(rows.astype({"label": float}), cfg)
    assert basis != monitor.window_basis(rows.assign(label=0), cfg)

    assert len(run(recompute=True) and assessed) == 2
    changed = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(
        update={"min_positives": cfg.monitoring.min_positives + 1})})  # fmt: skip
    latest = run(changed)
    assert len(assessed) == 2

    # a summary without Evidently's reports does not stand for a run that renders them
    folder, basis = Path(latest[0].report_dir), latest[0].basis
    assert monitor.previous_report(folder, basis, evidently=False) is not None
    assert monitor.previous_report(folder, basis, evidently=True) is None
    assert monitor.previous_report(folder, "another basis", evidently=False) is None
    (folder / monitor.SUMMARY_FILE).write_text("{not json")
    assert monitor.previous_report(folder, basis, evidently=False) is None


@pytest.mark.parametrize(
    ("length", "start"),
    [
        ("1D", "2026-07-01 00:00"),  # 07-01 10:30 lies in the day from midnight
        ("6h", "2026-07-01 06:00"),
        ("W", "2026-06-29 00:00"),  # the calendar week (Monday) that holds 07-01
    ],
)
def test_a_lookback_starts_where_the_window_holding_it_starts(length, start):
    now = pd.Timestamp("2026-07-15 10:30", tz="UTC")
    begun = monitor.lookback_start(now, pd.Timedelta("14D"), length)
    assert begun == pd.Timestamp(start, tz="UTC")
    rows = pd.DataFrame({"timestamp": [now - pd.Timedelta("14D")], "model_version": ["1"]})
    ((window, _, _),) = monitor.windows(rows, length)
    assert window == begun  # the very window `windows` cuts: read whole, never cut


def test_a_lookback_reads_recent_windows_and_keeps_older_ones_in_history(
    registered, tmp_path, monkeypatch
):
    cfg = registered
    monkeypatch.chdir(tmp_path)
    root, out = tmp_path / "log", tmp_path / "reports"
    for day, seed in (("2026-07-01", 1), ("2026-07-02", 2), ("2026-07-03", 3)):
        log_day(cfg, root, day, "1", frame(cfg, DAY, seed=seed))

    def run(since=None) -> list[monitor.WindowReport]:
        return monitor.run_monitor(cfg, log_root=root, out_root=out, evidently=False, since=since)

    assert [r.start[:10] for r in run()] == ["2026-07-01", "2026-07-02", "2026-07-03"]
    since = monitor.lookback_start(
        pd.Timestamp("2026-07-03 10:00", tz="UTC"), pd.Timedelta("30h"), "1D"
    )
    assert [r.start[:10] for r in run(since)] == ["2026-07-02", "2026-07-03"]
    history = json.loads((out / cfg.name / monitor.HISTORY_FILE).read_text())
    assert [w["start"][:10] for w in history] == ["2026-07-01", "2026-07-02", "2026-07-03"]
    with pytest.raises(SystemExit):  # one start or the other
        monitor.main(["--since", "2026-07-01", "--lookback", "2D"])
