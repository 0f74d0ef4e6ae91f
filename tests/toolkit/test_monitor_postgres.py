"""The inference log in PostgreSQL: a real server on loopback (the OS's binaries, a throwaway
cluster that asks for a password), written through the service, read back by `lockstep monitor`.
The password comes from PGPASSWORD or a secret variable, never from a file, and no message,
metrics file or report shows it; PII is redacted before it reaches the database."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lockstep import cli, platform
from lockstep.commands import ExitCode
from lockstep.config import StageError, load_params
from lockstep.inference_log import read_log
from lockstep.serve.client import Client
from lockstep.serve.server import Running, build

from .serving import Deployed, deployed, registry_dir  # noqa: F401
from .test_monitor import WINDOW_S, project, serve_windows

PASSWORD = "s3cret-pg-pass"  # pragma: allowlist secret


def start_postgres(data: Path, log: Path, attempts: int = 5) -> tuple[int, int]:
    """Start PostgreSQL on 127.0.0.1; return its port and postmaster's pid. It cannot bind port 0: it
    takes a port free a moment before, and another when that one was taken meanwhile. It is ready when
    its own postmaster.pid says so (line 4 its port, line 8 its status), whoever else answers there."""
    for _ in range(attempts):
        port = platform.free_port()
        cmd = [str(platform.PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)]
        runner = platform.spawn(platform.as_postgres(cmd), log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and platform.alive(runner):
            lines = (data / "postmaster.pid").read_text().splitlines() if (data / "postmaster.pid").exists() else []
            if len(lines) >= 8 and lines[3] == str(port) and lines[7].strip() == "ready":
                return port, int(lines[0])
            time.sleep(0.1)
        if platform.alive(runner) or "Address already in use" not in log.read_text():
            platform.stop(runner, signal.SIGINT)
            break
    pytest.fail(f"PostgreSQL did not start; its log {log}:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A PostgreSQL server on 127.0.0.1, user `monitor` with PASSWORD (scram-sha-256)."""
    if not (platform.PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries at {platform.PG_BIN} (Debian: apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="lockstep-monitor-pg-"))
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    data = base / "data"
    initdb = [str(platform.PG_BIN / "initdb"), "-D", str(data), "-U", "monitor", "--auth=scram-sha-256",
              f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"]  # fmt: skip
    subprocess.run(platform.as_postgres(initdb), check=True, capture_output=True)
    pwfile.unlink()
    try:
        port, pid = start_postgres(data, base / "postgres.log")
        try:
            yield port
        finally:
            platform.stop(pid, signal.SIGINT)  # the postmaster's fast shutdown
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(port: int, name: str) -> str:
    """A new database for one test; its URL without the password."""
    import psycopg2

    db = psycopg2.connect(host="127.0.0.1", port=port, user="monitor", password=PASSWORD, dbname="postgres")
    try:
        db.autocommit = True
        db.cursor().execute(f"CREATE DATABASE {name}")  # a fixed name of the test's
    finally:
        db.close()
    return f"postgresql://monitor@127.0.0.1:{port}/{name}"


def set_log(d: Deployed, log: str) -> None:
    params = yaml.safe_load(d.params_file.read_text())
    params["monitor"]["log"] = log
    d.params_file.write_text(yaml.safe_dump(params))


def test_service_logs_to_postgres_and_monitor_reads_it_back(
    deployed: Deployed, postgres: int, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import psycopg2

    url = fresh_database(postgres, "served")
    project(deployed)
    set_log(deployed, url)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # libpq's own variable: the URL in conf/ carries no password
    app, service = build(load_params(deployed.params_file))
    first_window = (time.time() // WINDOW_S - 4) * WINDOW_S  # of the four served below
    service.clock = lambda: first_window
    with Running(app) as running:
        http = Client(running.url)
        assert http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")[0] == 200
        ticket = "Write to jane.doe@example.com or call 555-123-4567 about order 42"
        assert http.post("/v1/prompts/summarize_ticket", {"variables": {"ticket": ticket}})[0] == 200
    service.close()
    assert service.log.written == 2 and service.log.dropped == 0
    records = read_log(url)
    assert [(r["endpoint"], r["variant"], r["model_version"]) for r in records] == [
        ("predict", "stable", 1), ("prompt", "stable", 1)
    ]  # fmt: skip
    assert records[0]["inputs"] == deployed.rows and records[0]["outputs"] == [0, 0, 0, 0]
    assert records[1]["inputs"]["ticket"] == "Write to [PII:email] or call [PII:phone] about order 42"
    # what the database itself holds: redacted text, not the PII
    db = psycopg2.connect(host="127.0.0.1", port=postgres, user="monitor", dbname="served")
    try:
        cursor = db.cursor()
        cursor.execute("SELECT inputs, outputs, coalesce(error, '') FROM inference")
        stored = " ".join(" ".join(row) for row in cursor.fetchall())
    finally:
        db.close()
    assert "jane.doe" not in stored and "555-123" not in stored and "[PII:email]" in stored

    # windows of traffic through the service, then `lockstep monitor` reads them from PostgreSQL
    serve_windows(deployed, {"stable": [0, 0, 2, 2]}, seed=300)
    capsys.readouterr()
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == ExitCode.RETRAIN
    out = capsys.readouterr().out
    assert "stable (serve_test/1): drift share 0.50" in out and "2 breach(es)" in out
    metrics = json.loads((deployed.root / "reports" / "monitor" / "metrics.json").read_text())
    assert metrics["rows"] == 1000 and metrics["drifted_features"] == ["f1"]


def test_the_password_stays_out_of_files_and_messages(
    deployed: Deployed, postgres: int, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url = fresh_database(postgres, "secret")
    project(deployed)
    with_password = url.replace("monitor@", f"monitor:{PASSWORD}@")
    # in conf/ (a committed file): refused, and the message masks it
    set_log(deployed, with_password)
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == 1
    err = capsys.readouterr().err
    assert "leave it out and set PGPASSWORD" in err and PASSWORD not in err and "monitor:***@127.0.0.1" in err
    # a wrong password from the secret variable: one line naming the log, masked
    set_log(deployed, "monitor/inference.db")
    monkeypatch.setenv("LOCKSTEP_MONITOR_LOG", url.replace("monitor@", "monitor:wrong-one@"))
    with pytest.raises(StageError, match=r"inference log postgresql://monitor:\*\*\*@127\.0\.0\.1:\d+/secret: ") as exc:
        build(load_params(deployed.params_file))
    assert "password authentication failed" in str(exc.value) and "wrong-one" not in str(exc.value)
    # the right one: served, judged, and no output carries it
    monkeypatch.setenv("LOCKSTEP_MONITOR_LOG", with_password)
    serve_windows(deployed, {"stable": [0, 0]}, seed=400)
    assert len(read_log(with_password)) == 20 and not (deployed.root / "monitor" / "inference.db").exists()
    capsys.readouterr()
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == 0
    captured = capsys.readouterr()
    written = [p.read_text() for p in (deployed.root / "reports" / "monitor").iterdir() if p.is_file()]
    assert "0 breach(es)" in captured.out
    assert all(PASSWORD not in text for text in [captured.out, captured.err, *written])
