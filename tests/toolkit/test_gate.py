"""The CI gate: rules against the base, every edge of a comparison, reports, lock check."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar
from xml.etree import ElementTree as ET

import pytest

from {{ cookiecutter.package_name }} import gate
from {{ cookiecutter.package_name }}.gate import Rule, Value

ACCURACY = Rule(metric="reports/metrics.json:accuracy", direction="higher", min=0.9, max_regression=0.02)
LATENCY = Rule(metric="reports/*.json:latency_ms", direction="lower", max=10, max_regression_pct=50)


def failures(rule: Rule, old: object, new: object, absent: str = "absent") -> list[str]:
    return gate.evaluate(rule, "m", Value.of(old, absent=absent), Value.of(new)).failures


def test_regressions_within_and_beyond_the_rule() -> None:
    assert failures(ACCURACY, 0.95, 0.94) == []
    assert failures(ACCURACY, 0.95, 0.92) == ["regressed by 0.03 > 0.02"]
    assert failures(ACCURACY, 0.95, 0.89) == ["0.89 < min 0.9", "regressed by 0.06 > 0.02"]
    assert failures(ACCURACY, 0.91, 0.99) == []  # improvements always pass
    assert failures(LATENCY, 4.0, 5.9) == []
    assert failures(LATENCY, 4.0, 6.4) == ["regressed by 60% > 50%"]
    assert failures(LATENCY, 0.0, 0.1) == ["regressed by inf% > 50%"]


def test_no_base_yet_checks_absolute_limits_only() -> None:
    assert failures(ACCURACY, None, 0.91) == []
    assert failures(ACCURACY, None, 0.5) == ["0.5 < min 0.9"]


def test_unreadable_values_fail_unless_the_rule_allows_it() -> None:
    assert failures(ACCURACY, None, 0.95, absent="unreadable at base (JSONDecodeError)") == [
        "base value unreadable at base (JSONDecodeError)"
    ]
    assert failures(ACCURACY, 0.95, float("nan")) == ["new value not a number (nan)"]
    assert failures(ACCURACY, 0.95, "high") == ["new value not a number ('high')"]
    assert failures(ACCURACY, 0.95, True) == ["new value not a number (True)"]
    assert failures(ACCURACY, 0.95, None) == ["new value missing"]
    lenient = ACCURACY.model_copy(update={"on_unreadable": "pass"})
    assert failures(lenient, 0.95, float("nan")) == []


def test_rules_match_globs_and_name_missing_metrics() -> None:
    values = {
        "reports/a.json:latency_ms": (Value.of(5), Value.of(6)),
        "reports/b.json:latency_ms": (Value.of(5), Value.of(9)),
        "reports/metrics.json:new_metric": (Value(problem="absent"), Value.of(1)),
    }
    checks = gate.apply_rules([LATENCY, ACCURACY], values)
    assert [(c.metric, c.passed) for c in checks] == [
        ("reports/a.json:latency_ms", True),
        ("reports/b.json:latency_ms", False),
        ("reports/metrics.json:accuracy", False),
    ]
    assert checks[2].failures == ["new value no such metric in workspace or base"]


def test_report_and_junit(tmp_path: Path) -> None:
    values = {
        "reports/metrics.json:accuracy": (Value.of(0.96), Value.of(0.90)),
        "reports/metrics.json:new_metric": (Value(problem="absent"), Value.of(1.5)),
    }
    checks = gate.apply_rules([ACCURACY], values)
    context = {"base": "a" * 40, "head": "b" * 40, "params": "| param |", "prompts": "-old\n+new\n"}
    text = gate.report(checks, values, "main", context)
    assert text.startswith(gate.MARKER)
    assert "❌ **Gate failed**: 1 of 1 checks broken" in text
    assert "| `reports/metrics.json:accuracy` | 0.96 | 0.9 | -0.06 (-6.2%) |" in text
    assert "| `reports/metrics.json:new_metric` | — (absent) | 1.5 | new |" in text
    assert "```diff\n-old\n+new\n```" in text and "### Params changed" in text
    suite = ET.fromstring(gate.junit(checks))
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert suite.find("testcase/failure").get("message") == "regressed by 0.06 > 0.02"
    assert gate.openmetrics(values) == "reports_metrics_json_accuracy 0.9\nreports_metrics_json_new_metric 1.5\n"


def test_stale_lock_ignores_missing_outputs_and_data() -> None:
    # The shape of `dvc status --json`, as in a fresh clone whose data has not been pulled
    status = json.loads(
        """
        {"prepare": [{"changed deps": {"data/raw/x.csv": "deleted"} },
                     {"changed outs": {"data/prepared": "deleted"} }],
         "train": [{"changed deps": {"src/pkg/stages/train.py": "modified"} }],
         "evaluate": [{"changed params": {"params.yaml": {"evaluate.floors": "modified"} } }],
         "data/raw/x.csv.dvc": [{"changed outs": {"data/raw/x.csv": "not in cache"} }]}
        """
    )
    assert gate.stale_stages(status) == {
        "train": ["src/pkg/stages/train.py modified"],
        "evaluate": ["changed params"],
    }


class Notes(BaseHTTPRequestHandler):
    """A loopback stand-in for GitLab's merge-request notes API."""

    calls: ClassVar[list[tuple[str, str, str]]] = []
    existing: ClassVar[list[dict]] = []

    def _answer(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Notes.calls.append((self.command, self.path, self.rfile.read(length).decode()))
        assert self.headers["PRIVATE-TOKEN"] == "note-token"

    def do_GET(self) -> None:
        self._record()
        self._answer(Notes.existing)

    def do_POST(self) -> None:
        self._record()
        self._answer({"id": 7})

    do_PUT = do_POST

    def log_message(self, *args: object) -> None:
        pass


def test_report_is_posted_once_then_updated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    server = HTTPServer(("127.0.0.1", 0), Notes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    report = tmp_path / "report.md"
    report.write_text(f"{gate.MARKER}\nGate passed")
    monkeypatch.setenv("CI_API_V4_URL", f"http://127.0.0.1:{server.server_port}/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "3")
    monkeypatch.delenv("GITLAB_NOTE_TOKEN", raising=False)
    try:
        assert gate.post_gitlab(report) == 0 and Notes.calls == []
        assert "set the masked CI/CD variable GITLAB_NOTE_TOKEN" in capsys.readouterr().out
        monkeypatch.setenv("GITLAB_NOTE_TOKEN", "note-token")
        assert gate.post_gitlab(report) == 0
        Notes.existing = [{"id": 5, "body": "unrelated"}, {"id": 9, "body": f"{gate.MARKER} old"}]
        assert gate.post_gitlab(report) == 0
    finally:
        server.shutdown()
    methods = [(method, path.split("?")[0]) for method, path, _ in Notes.calls]
    assert methods == [
        ("GET", "/api/v4/projects/42/merge_requests/3/notes"),
        ("POST", "/api/v4/projects/42/merge_requests/3/notes"),
        ("GET", "/api/v4/projects/42/merge_requests/3/notes"),
        ("PUT", "/api/v4/projects/42/merge_requests/3/notes/9"),
    ]
    assert "Gate+passed" in Notes.calls[1][2] and "note-token" not in capsys.readouterr().out
