"""The lifecycle after the registry, walked as a user walks it, per task type, with the docs' commands:

    make repro -> commit -> make gate -> make promote                       (version 1 is champion)
    a change on a branch: make repro -> commit -> make gate -> make policy   (version 2 is challenger)
    make deploy-lock -> make serve (answers) -> make staging
    make canary-rehearsal (promotes), INJECT=latency=300ms and INJECT=errors=5% (roll back)
    make monitor-rehearsal (no request), lockstep monitor calibrate (no request in 200 unshifted windows),
    SHIFT=top:1:+2sd (retraining requested at window 2), SHIFT=bottom:1:+2sd (no request)

On the default bake (binary, with prompts) and on two data sets of the other task types baked
without prompts (sklearn's wine: multiclass; diabetes: regression). `make` exits 2 whenever the
command under it fails; the command's own status is in its output.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GIT_ID, bake, project_env, serve, sh, task_data
from lockstep.serve.client import Client

pytestmark = pytest.mark.slow

TASKS = {
    # task: (bake answers, data: (loader, target, conf/model file), the change that makes version 2)
    "binary": ({}, None, ("conf/model/logistic_regression.yaml", "C: 1.0", "C: 0.5")),
    "multiclass": (
        {"include_llm": "no"},
        ("load_wine", "cultivar", "logistic_regression"),
        ("conf/model/logistic_regression.yaml", "C: 1.0", "C: 0.5"),
    ),
    "regression": (
        {"include_llm": "no"},
        ("load_diabetes", "progression", "ridge"),
        ("conf/model/ridge.yaml", "alpha: 1.0", "alpha: 0.5"),
    ),
}


def commit(project: Path, message: str) -> None:
    env = project_env(project) | GIT_ID
    sh(project, "git", "add", "-A", env=env)
    sh(project, "git", "commit", "-q", "-m", message, env=env)


def make(project: Path, *args: str, status: int = 0) -> str:
    """`make ...` in the project; its output (stdout and stderr), after checking make's exit status."""
    result = sh(project, "make", *args, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == status, f"make {' '.join(args)} exited {result.returncode}:\n{out[-4000:]}"
    return out


def use_task_data(project: Path, task: str, loader: str, target: str, model: str) -> None:
    """A user's own CSV and task: the data file, conf/data for it, and conf/config.yaml choosing them."""
    task_data(project, task, loader, target, task)
    config = project / "conf" / "config.yaml"
    text = config.read_text().replace("- data: breast_cancer", f"- data: {task}")
    config.write_text(text.replace("- model: logistic_regression", f"- model: {model}"))
    sh(project, "dvc", "add", "-q", f"data/raw/{task}.csv")
    make(project, "params")


@pytest.mark.timeout(1800)  # the default bake's staging step asks the live local model all its golden cases
@pytest.mark.parametrize("task", list(TASKS))
def test_the_lifecycle_after_the_registry_walks(
    task: str, tmp_path: Path, recorded_answers: Callable[[Path], None]
) -> None:
    answers, data, change = TASKS[task]
    project = bake(tmp_path, project_name="Walk", ci_provider="none", **answers)
    recorded_answers(project)
    make(project, "setup")
    if data:
        use_task_data(project, task, *data)
    make(project, "repro")
    commit(project, "Reproduce")
    assert "gate: passed" in make(project, "gate", "BASE=main")
    assert "promote: @champion -> models:/walk/1" in make(project, "promote")

    # A change on a branch: version 2, the challenger, judged against main and allowed by the policies
    sh(project, "git", "checkout", "-q", "-b", "change")
    file, old, new = change
    (project / file).write_text((project / file).read_text().replace(old, new))
    make(project, "params")
    commit(project, "A change to the model")
    assert "register: models:/walk/2 (@challenger)" in make(project, "repro")
    commit(project, "Reproduce the change")
    gate = make(project, "gate", "BASE=main")
    assert re.search(r"gate: (passed|inconclusive)", gate), gate
    assert "policy: allow (models:/walk/2" in make(project, "policy")
    locked = make(project, "deploy-lock")
    assert "stable (@champion) -> models:/walk/1" in locked and "canary (@challenger) -> models:/walk/2" in locked

    # The service answers the model's requests in the data's terms, and the prompts'
    test = project / "data" / "prepared" / "test.parquet"
    code = f"import pandas as pd; print(pd.read_parquet({str(test)!r}).head(3).to_json(orient='records'))"
    rows = json.loads(sh(project, "python", "-c", code).stdout)
    labels = [row.pop(next(k for k in row if k in ("diagnosis", "cultivar", "progression"))) for row in rows]
    server, url = serve(
        ["make", "serve", "PORT=0"],
        r"on (http://127\.0\.0\.1:\d+)",
        tmp_path / "serve.log",
        180,
        cwd=project,
        env=project_env(project),
        start_new_session=True,
    )  # fmt: skip (make and the service under it: one process group, stopped together)
    try:
        client = Client(url)
        status, body, _ = client.post("/v1/predict", {"rows": rows})
        assert status == 200, body
        if task == "regression":
            assert all(isinstance(p, float) for p in body["predictions"])
        else:  # class names, as in the data: never 0/1 against string labels
            assert {str(p) for p in body["predictions"]} <= {str(label) for label in labels} | {"benign", "malignant"}
        status, body, _ = client.post("/v1/predict", {"rows": [dict(rows[0], **{next(iter(rows[0])): "x"})]})
        assert status == 422 and body["detail"][0]["loc"][:3] == ["body", "rows", 0], body
        if task == "binary":
            status, body, _ = client.post("/v1/prompts/triage_ticket", {"variables": {"ticket": "Charged twice"}})
            assert status == 200 and body["prompt"]["name"] == "triage_ticket", body
        client.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert "staging: passed" in make(project, "staging")

    assert "canary-rehearsal: promote (inject none)" in make(project, "canary-rehearsal")
    slow = make(project, "canary-rehearsal", "INJECT=latency=300ms", status=2)
    assert "canary-rehearsal: rollback (inject latency=300ms)" in slow and "p95" in slow
    failing = make(project, "canary-rehearsal", "INJECT=errors=5%", status=2)
    assert "canary-rehearsal: rollback (inject errors=5%)" in failing and "error rate" in failing

    quiet = make(project, "monitor-rehearsal")
    assert "failing: none; 0 breach(es)" in quiet and "retraining requested" not in quiet
    calibrated = sh(project, ".venv/bin/lockstep", "monitor", "calibrate").stdout  # 200 unshifted windows
    assert "monitor calibrate: 200 unshifted windows" in calibrated, calibrated
    assert "retraining requests by the rule as configured: 0" in calibrated, calibrated
    # the feature the model uses most, +2 sd: every window breaches, so the 2-of-5 rule asks at window 2
    shifted = make(project, "monitor-rehearsal", "SHIFT=top:1:+2sd", status=2)
    assert "5 breach(es)" in shifted and "retraining requested" in shifted and "exit 4" in shifted
    unused = make(project, "monitor-rehearsal", "SHIFT=bottom:1:+2sd")  # the one it uses least: nothing
    assert "0 breach(es)" in unused and "retraining requested" not in unused
