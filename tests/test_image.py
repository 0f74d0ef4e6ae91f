"""The generated Dockerfile: clean under hadolint, multi-stage, non-root, labelled, with a
healthcheck; and, with no Docker engine on this machine, its exact ENTRYPOINT and HEALTHCHECK
run as processes against a deploy lock in a temporary registry."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from conftest import bake, readline

BIN = Path(sys.executable).parent


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.parametrize("llm", ["yes", "no"])
def test_dockerfile_is_clean_multi_stage_non_root_and_labelled(tmp_path: Path, llm: str) -> None:
    project = bake(tmp_path, include_llm=llm, init_git="no")
    hadolint = shutil.which("hadolint", path=str(BIN)) or "hadolint"
    linted = subprocess.run([hadolint, "--format", "json", "Dockerfile"], cwd=project, capture_output=True, text=True)
    assert linted.returncode == 0 and json.loads(linted.stdout) == [], linted.stdout + linted.stderr
    steps = instructions(project / "Dockerfile")
    assert sum(kind == "FROM" for kind, _ in steps) == 2
    (user,) = [args for kind, args in steps if kind == "USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric, non-root user"
    labels = " ".join(args for kind, args in steps if kind == "LABEL")
    for label in ("org.opencontainers.image.revision", "io.lockstep.model-versions", "io.lockstep.prompt-versions"):
        assert label in labels
    assert dict(steps)["ENTRYPOINT"] == '["lockstep", "serve"]'
    assert "HEALTHCHECK" in dict(steps)
    ignored = (project / ".dockerignore").read_text(encoding="utf-8")
    assert ("!prompts/" in ignored) == (llm == "yes")


def test_the_image_entrypoint_serves_the_lock_and_passes_its_healthcheck(tmp_path: Path) -> None:
    from toolkit.conftest import FakeLLMServer
    from toolkit.serving import build_registry, deploy_params

    from lockstep.serve.client import Client

    project = bake(tmp_path / "bake", init_git="no")
    steps = instructions(project / "Dockerfile")
    entrypoint = json.loads(dict(steps)["ENTRYPOINT"])
    healthcheck = json.loads(dict(steps)["HEALTHCHECK"].split(" CMD ", 1)[1])
    registry = tmp_path / "registry"
    registry.mkdir()
    uri = f"sqlite:///{registry / 'mlflow.db'}"
    cwd = os.getcwd()
    os.chdir(registry)
    try:
        build_registry(registry, uri)
    finally:
        os.chdir(cwd)
    llm = FakeLLMServer()
    threading.Thread(target=llm.serve_forever, args=(0.01,), daemon=True).start()
    app_dir = tmp_path / "app"  # what the image's /app holds: params.yaml and deploy.lock.json
    app_dir.mkdir()
    (app_dir / "params.yaml").write_text(yaml.safe_dump(deploy_params(llm.url)), encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "LOCKSTEP_TEST_KEY": llm.key,
        "HOST": "127.0.0.1",
        "PORT": "0",  # the OS picks a free port; the process prints the one it bound
    }
    subprocess.run([BIN / "lockstep", "deploy", "lock"], cwd=app_dir, env=env, check=True, capture_output=True)
    server = subprocess.Popen(entrypoint, cwd=app_dir, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = readline(server.stdout, 120)  # printed once listening
        match = re.search(r"on http://127\.0\.0\.1:(\d+) weight 0%", line)
        assert match, line
        port = match[1]
        checked = subprocess.run(healthcheck, env={**env, "PORT": port}, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        status, body, _ = Client(f"http://127.0.0.1:{port}").post("/v1/predict", {"rows": [{"f1": 1.0, "f2": 0.0}]})
        assert status == 200 and body["model"]["version"] == 1 and body["variant"] == "stable"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
        llm.shutdown()
        llm.server_close()
