"""The team platform on this machine: MLflow on PostgreSQL, artifacts and DVC data in S3, on loopback.

    lockstep platform up [--dir .platform] [--bucket NAME ...]
    lockstep platform down [--dir .platform]
    lockstep platform compose            # print the compose file of the same platform, for real use

`up` starts three servers as background processes listening on 127.0.0.1 at free ports:
PostgreSQL (the server binaries of the OS, a throwaway cluster in a temporary directory),
moto's S3 server, and `mlflow server` with its tracking and registry in PostgreSQL and its
artifacts in the bucket `mlflow` (clients reach them through the server, so they need no S3
credentials for MLflow). It creates the buckets named with --bucket (a project's DVC remote and
run-cache) and writes DIR/env, the variables a project needs (`source DIR/env`). Running `up`
again starts only the servers that are not running, on the same ports with the same data (a
restart of the MLflow server loses nothing: everything it knows is in PostgreSQL and S3).
`down` stops each server by its process id and removes the PostgreSQL cluster.

moto keeps its buckets in memory: this is for local use and tests. A team's shared platform is
the compose file (PostgreSQL, MinIO, MLflow), whose data outlives its containers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lockstep.config import StageError

PG_BIN = Path(os.environ.get("LOCKSTEP_PG_BIN", "/usr/lib/postgresql/15/bin"))
ARTIFACTS_BUCKET = "mlflow"
# moto accepts any credentials; a project's S3 clients (DVC, boto3) still need some to sign with.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
    "AWS_DEFAULT_REGION": "us-east-1",
}
SERVERS = ("postgres", "s3", "mlflow")
STATE = "state.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def wait_for(port: int, pid_alive: Any, what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        if not pid_alive():
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise StageError(f"{what} did not start listening on 127.0.0.1:{port}; its log {log}:\n{tail}")


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start a server in a session of its own (so `down` stops it and its workers), return its pid."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc.pid


def start_postgres(state: dict[str, Any], logs: Path) -> None:
    if not (PG_BIN / "initdb").exists():
        raise StageError(f"no PostgreSQL at {PG_BIN}; install postgresql (Debian) or set LOCKSTEP_PG_BIN")
    data = Path(state.setdefault("pg_data", tempfile.mkdtemp(prefix="lockstep-pg-")))
    port = state.setdefault("pg_port", free_port())
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--locale=C"]
            ),
            check=True,
            capture_output=True,
        )
    log = logs / "postgres.log"
    cmd = [str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)]
    runner = spawn(as_postgres(cmd), log)
    wait_for(port, lambda: alive(runner), "PostgreSQL", log, 60)
    # The postmaster's own pid (runuser stays as its parent): the one to signal
    state["pids"]["postgres"] = int((data / "postmaster.pid").read_text().split()[0])
    if not state.get("pg_db"):
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"],
            check=True,
            capture_output=True,
        )
        state["pg_db"] = "mlflow"


def start_s3(state: dict[str, Any], logs: Path, buckets: list[str]) -> None:
    port = state.setdefault("s3_port", free_port())
    log = logs / "s3.log"
    pid = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)
    state["pids"]["s3"] = pid
    wait_for(port, lambda: alive(pid), "moto's S3 server", log, 60)
    create_buckets(state, [ARTIFACTS_BUCKET, *state.get("buckets", [])])


def create_buckets(state: dict[str, Any], buckets: list[str]) -> None:
    import boto3

    endpoint = f"http://127.0.0.1:{state['s3_port']}"
    keys = {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    client = boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"], **keys)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def start_mlflow(state: dict[str, Any], logs: Path) -> None:
    port = state.setdefault("mlflow_port", free_port())
    env = dict(os.environ, MLFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{state['s3_port']}", **CREDENTIALS)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"postgresql+psycopg2://mlflow@127.0.0.1:{state['pg_port']}/mlflow",
           "--artifacts-destination", f"s3://{ARTIFACTS_BUCKET}/artifacts", "--workers", "2"]  # fmt: skip
    log = logs / "mlflow.log"
    pid = spawn(cmd, log, env)
    state["pids"]["mlflow"] = pid
    wait_for(port, lambda: alive(pid), "the MLflow server", log, 180)


def project_env(state: dict[str, Any]) -> dict[str, str]:
    """What a project needs to use the platform: tracking server, S3 endpoint, credentials."""
    s3 = f"http://127.0.0.1:{state['s3_port']}"
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{state['mlflow_port']}",
        "MLFLOW_S3_ENDPOINT_URL": s3,
        "AWS_ENDPOINT_URL": s3,
        **CREDENTIALS,
    }


def read_state(root: Path) -> dict[str, Any]:
    path = root / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"pids": {}}


def write_state(root: Path, state: dict[str, Any]) -> None:
    (root / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    lines = [f"export {key}={value}" for key, value in project_env(state).items()]
    (root / "env").write_text("# source this file: the platform of `lockstep platform up`\n" + "\n".join(lines) + "\n")


def up(root: Path, buckets: list[str]) -> int:
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = read_state(root)
    state["buckets"] = sorted(set(state.get("buckets", [])) | set(buckets))
    try:
        if not alive(state["pids"].get("postgres")):
            start_postgres(state, root)
        if not alive(state["pids"].get("s3")):
            start_s3(state, root, buckets)
        else:
            create_buckets(state, state["buckets"])
        if not alive(state["pids"].get("mlflow")):
            start_mlflow(state, root)
    finally:
        if "s3_port" in state and "mlflow_port" in state:
            write_state(root, state)
        else:
            (root / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    env = project_env(state)
    buckets = ", ".join([ARTIFACTS_BUCKET, *state["buckets"]])
    print(f"platform: MLflow {env['MLFLOW_TRACKING_URI']} (PostgreSQL 127.0.0.1:{state['pg_port']}),"
          f" S3 {env['MLFLOW_S3_ENDPOINT_URL']} (buckets {buckets})")  # fmt: skip
    print(f"platform: `source {root / 'env'}`, then point the DVC remote at the bucket:"
          f" dvc remote modify --local storage endpointurl {env['MLFLOW_S3_ENDPOINT_URL']}")  # fmt: skip
    return 0


def stop(pid: int, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop one server by its pid (and the workers in its session), waiting until it is gone."""
    try:
        os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def down(root: Path) -> int:
    root = root.resolve()
    state = read_state(root)
    for name in reversed(SERVERS):
        pid = state["pids"].pop(name, None)
        if pid and alive(pid):
            # PostgreSQL: SIGINT is its fast shutdown (SIGTERM waits for clients to leave)
            stop(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
    if state.get("pg_data"):
        shutil.rmtree(state["pg_data"], ignore_errors=True)
    for name in (STATE, "env"):
        (root / name).unlink(missing_ok=True)
    print(f"platform: stopped ({root})")
    return 0


def compose_file() -> Path:
    return Path(__file__).with_name("compose.yaml")
