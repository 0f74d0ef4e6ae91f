"""The inference log: every sampled request recorded with its variant, versions, latency and
quality signals, PII redacted before it is stored; a full queue drops records, counts them, and
never fails a request."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import time

import pytest
import yaml

from lockstep import cli
from lockstep.config import StageError, load_params
from lockstep.inference_log import COLUMNS, InferenceLog, read_log
from lockstep.serve.client import Client
from lockstep.serve.server import Running, build

from .serving import MODEL, Deployed, deployed, registry_dir  # noqa: F401


def with_monitor(d: Deployed, **monitor: object) -> None:
    params = yaml.safe_load(d.params_file.read_text())
    params["monitor"] = {"log": "monitor/inference.db", **monitor}
    d.params_file.write_text(yaml.safe_dump(params))
    assert cli.main(["deploy", "lock", "--params", str(d.params_file)]) == 0


def dropped_metric(http: Client) -> float:
    text = http.get("/metrics")[1]
    line = next(x for x in text.splitlines() if x.startswith("lockstep_inference_log_dropped_total"))
    return float(line.split()[-1])


def test_requests_are_logged_with_versions_latency_and_pii_redacted(deployed: Deployed) -> None:
    with_monitor(deployed)
    app, service = build(load_params(deployed.params_file))
    with Running(app) as running:
        http = Client(running.url)
        status, body, _ = http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")
        assert status == 200, body
        ticket = "Write to jane.doe@example.com or call 555-123-4567 about order 42"
        status, body, _ = http.post("/v1/prompts/summarize_ticket", {"variables": {"ticket": ticket}})
        assert status == 200, body
        assert dropped_metric(http) == 0
    service.close()
    records = read_log(deployed.root / "monitor" / "inference.db")
    assert [r["endpoint"] for r in records] == ["predict", "prompt"]
    predict, prompt = records
    assert predict["variant"] == "stable" and predict["model_name"] == MODEL and predict["model_version"] == 1
    assert predict["inputs"] == deployed.rows and predict["outputs"] == [0, 0, 0, 0]
    assert predict["latency_ms"] > 0 and predict["deploy_id"] == service.deploy_id and predict["quality"] == []
    assert prompt["prompt_name"] == "summarize_ticket" and prompt["prompt_version"] == 1
    assert prompt["inputs"]["ticket"] == "Write to [PII:email] or call [PII:phone] about order 42"
    assert prompt["outputs"] == deployed.llm.answer
    raw = (deployed.root / "monitor" / "inference.db").read_bytes()
    assert b"jane.doe" not in raw and b"555-123" not in raw


def test_each_request_has_an_id_returned_and_logged(deployed: Deployed, tmp_path) -> None:
    """A client's well-formed X-Request-ID is kept; a malformed or missing one is replaced by a new id;
    each is returned (header and body) and logged, so labels sent later can be joined to it."""
    import sqlite3

    with_monitor(deployed)
    app, service = build(load_params(deployed.params_file))
    with Running(app) as running:
        http = Client(running.url)
        sent = [("order-42", "order-42"), ("bad id with spaces", None), (None, None)]
        returned = []
        for given, expected in sent:
            headers = {"X-Request-ID": given} if given else None
            status, body, head = http.request("POST", "/v1/predict", {"rows": deployed.rows}, headers)
            assert status == 200 and head["x-request-id"] == body["request_id"]
            assert body["request_id"] == expected if expected else body["request_id"] != given
            returned.append(body["request_id"])
        status, body, head = http.post("/v1/prompts/summarize_ticket", {"variables": {"ticket": "t"}})
        assert status == 200 and head["x-request-id"] == body["request_id"]
        returned.append(body["request_id"])
    service.close()
    assert returned[0] == "order-42" and len(set(returned)) == 4 and "bad id with spaces" not in returned
    assert [r["request_id"] for r in read_log(deployed.root / "monitor" / "inference.db")] == returned
    # a log written before requests had ids gains the column when the service starts, and reads as before
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        columns = ", ".join(f"{c} TEXT" for c in COLUMNS if c not in ("ts", "request_id"))
        db.execute(f"CREATE TABLE inference (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, {columns})")
        db.execute("INSERT INTO inference (ts, endpoint, inputs) VALUES (1, 'predict', '[]')")
    db.close()
    assert read_log(old)[0]["request_id"] is None
    log = InferenceLog(old)
    log.record(ts=2.0, endpoint="predict", request_id="r1", inputs=[])
    log.close()
    assert [r["request_id"] for r in read_log(old)] == [None, "r1"] and log.dropped == 0


def test_what_is_stored_is_configured_allow_list_redaction_and_retention(deployed: Deployed, tmp_path) -> None:
    # An allow-list: f2 is never stored, whatever its type; the project's own pattern redacts order numbers
    with_monitor(deployed, fields=["f1", "ticket"], redact={"order": r"order \d+"}, retention_rows=3)
    app, service = build(load_params(deployed.params_file))
    with Running(app) as running:
        http = Client(running.url)
        for _ in range(4):
            assert http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")[0] == 200
        ticket = "Mail jane.doe@example.com about order 42"
        assert http.post("/v1/prompts/summarize_ticket", {"variables": {"ticket": ticket, "extra": "x"}})[0] == 200
    service.close()
    records = read_log(deployed.root / "monitor" / "inference.db")
    assert len(records) == 3, "retention_rows: the newest 3 kept"
    assert all(set(row) == {"f1"} for r in records if r["endpoint"] == "predict" for row in r["inputs"])
    assert records[-1]["inputs"] == {"ticket": "Mail jane.doe@example.com about [PII:order]"}  # the project's list
    raw = (deployed.root / "monitor" / "inference.db").read_bytes()
    assert b'"f2"' not in raw and b"extra" not in raw
    # retention by age: a record 91 days older than the newest is deleted with the next batch
    log = InferenceLog(tmp_path / "aged.db", retention_days=90)
    log.record(ts=0.0, endpoint="predict", inputs=[{"f1": 1}])
    log.flush()
    log.record(ts=91 * 86400.0, endpoint="predict", inputs=[{"f1": 2}])
    log.close()
    assert [r["inputs"] for r in read_log(tmp_path / "aged.db")] == [[{"f1": 2}]]
    params = yaml.safe_load(deployed.params_file.read_text())
    params["monitor"]["redact"] = {"bad": "("}
    deployed.params_file.write_text(yaml.safe_dump(params))
    with pytest.raises(StageError, match=r"redact.bad: not a regular expression"):  # the key and the mistake
        load_params(deployed.params_file)


def test_sampling_keeps_about_the_configured_share(deployed: Deployed) -> None:
    with_monitor(deployed, sample_rate=0.25)
    _app, service = build(load_params(deployed.params_file))
    for _ in range(400):
        service.predict("stable", deployed.rows)
    service.close()
    kept = len(read_log(deployed.root / "monitor" / "inference.db"))
    counts = f"{kept} stored; the writer counted {service.log.written} written, {service.log.dropped} dropped"
    assert 60 < kept < 140, counts  # binomial(400, 0.25): mean 100, sd 8.7
    assert service.log.dropped == 0 and service.log.written == kept, counts


def test_a_full_queue_drops_records_without_failing_requests(deployed: Deployed, capsys) -> None:
    with_monitor(deployed)
    app, service = build(load_params(deployed.params_file))
    service.log.close()
    # a writer that has not started: the queue of 3 fills, and every record after is dropped
    service.log = InferenceLog(
        deployed.root / "monitor" / "stalled.db", queue_size=3, on_drop=service.metrics.log_dropped.inc, start=False
    )
    with Running(app) as running:
        http = Client(running.url)
        statuses = [http.post("/v1/predict", {"rows": deployed.rows})[0] for _ in range(20)]
        assert statuses == [200] * 20
        assert service.log.dropped == 17 and dropped_metric(http) == 17
    service.log.start()
    service.close()
    assert service.log.written == 3 and len(read_log(deployed.root / "monitor" / "stalled.db")) == 3
    # staging and rehearsals build the service without the log
    assert build(load_params(deployed.params_file), log=False)[1].log is None
    # 5000 records with room in the queue: every one written, none dropped (its cost: benchmark_serve.py)
    log = InferenceLog(deployed.root / "monitor" / "bench.db", queue_size=100000)
    for _ in range(5000):
        log.record(ts=time.time(), variant="stable", endpoint="predict", inputs=deployed.rows, outputs=[0, 0, 0, 0])
    log.close()
    assert log.written == 5000 and log.dropped == 0
