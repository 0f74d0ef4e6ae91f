"""The team platform: its compose file against the Compose Specification, and two baked projects
(two teams) on the real servers of `lockstep platform up` (PostgreSQL, moto's S3, MLflow).

The platform starts once for the module, and the two projects are baked and set up once; the
slow tests run in file order on them: the teams share the server without touching each other's
models and prompts, parallel experiments register without lost or mixed versions, a fresh clone
pulls from S3 and reproduces nothing, and the MLflow server killed in the middle of a registration
then restarted loses nothing. Everything is bounded by what it counts (versions, stages run), not
by wall time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import GIT_ID, ROOT, bake, project_env, ran, run_queue, sh

COMPOSE = ROOT / "src" / "lockstep" / "compose.yaml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec" / "compose-spec.json"
TEAMS = {"alpha": "Team Alpha", "beta": "Team Beta"}


def lockstep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lockstep", *args], capture_output=True, text=True, check=False)


def test_compose_file_is_valid_and_pinned() -> None:
    import jsonschema

    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose)  # the draft its $schema names
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "buckets", "mlflow"}
    for name, service in services.items():
        image = service["image"]
        tag = image.partition("@")[0].rpartition(":")[2]
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: pin {image} to a release"
    assert "@sha256:" in services["minio"]["image"] and "@sha256:" in services["buckets"]["image"]
    assert "FROM ghcr.io/mlflow/mlflow:v3." in services["mlflow"]["build"]["dockerfile_inline"]
    command = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg2://" in command and "@postgres:5432/" in command
    assert "--artifacts-destination=s3://mlflow/" in command
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    printed = lockstep("platform", "compose")
    assert printed.returncode == 0 and printed.stdout == COMPOSE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """PostgreSQL, moto's S3 and MLflow on loopback, with a bucket for each team's DVC remote."""
    root = tmp_path_factory.mktemp("platform")
    buckets = [arg for team in TEAMS for arg in ("--bucket", f"team-{team}-dvc")]
    try:
        started = lockstep("platform", "up", "--dir", str(root), *buckets)
        assert started.returncode == 0, started.stdout + started.stderr
        env = dict(re.findall(r"^export (\w+)=(.*)$", (root / "env").read_text(), re.M))
        yield root, env
    finally:
        stopped = lockstep("platform", "down", "--dir", str(root))
        assert stopped.returncode == 0, stopped.stderr


def team_env(project: Path, platform_env: dict[str, str]) -> dict[str, str]:
    """The project's environment on the platform, as CI runs it: on a shared registry only CI moves
    aliases (lockstep.aliases.may_move), so these runs stand for CI's with or without CI=true outside."""
    return project_env(project) | GIT_ID | platform_env | {"CI": "true"}


@pytest.fixture(scope="module")
def teams(
    platform: tuple[Path, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
    recorded_answers: Callable[[Path], None],
) -> dict[str, Path]:
    """Two projects of two teams, each reproduced once against the platform and committed.

    Team beta's summarize_ticket prompt differs from alpha's (max_tokens), so a mix-up shows."""
    _, platform_env = platform
    projects = {}
    for team, name in TEAMS.items():
        out = tmp_path_factory.mktemp(team)
        project = bake(out, project_name=name, dvc_remote="s3", ci_provider="none")
        recorded_answers(project)
        conf = project / "conf" / "prompts" / "default.yaml"
        conf.write_text(conf.read_text().replace('registry_prefix: ""', f'registry_prefix: "team_{team}."'))
        if team == "beta":
            prompt = project / "prompts" / "summarize_ticket.yaml"
            prompt.write_text(prompt.read_text().replace("max_tokens: 48", "max_tokens: 40"))
        env = team_env(project, platform_env)
        sh(project, "make", "setup")
        sh(project, "dvc", "remote", "modify", "--local", "storage", "endpointurl",
           platform_env["MLFLOW_S3_ENDPOINT_URL"], env=env)  # fmt: skip
        sh(project, "make", "repro", env=env)
        sh(project, "git", "add", "-A", env=env)
        sh(project, "git", "commit", "-q", "-m", "Reproduce on the team platform", env=env)
        projects[team] = project
    return projects


def query(project: Path, env: dict[str, str], code: str) -> object:
    """Run Python with MLflow in the project's environment against the platform; its JSON answer."""
    result = sh(project, "python", "-c", f"import json, mlflow; c = mlflow.MlflowClient(); {code}", env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def versions(project: Path, env: dict[str, str], model: str) -> list[list]:
    """[version, model_md5, run_id, aliases] of every version of a registered model, by version."""
    code = (
        f"vs = c.search_model_versions(\"name = '{model}'\");"
        " al = lambda v: sorted(c.get_model_version(v.name, v.version).aliases);"  # search leaves aliases out
        " print(json.dumps(sorted([[int(v.version), v.tags['model_md5'], v.run_id, al(v)] for v in vs])))"
    )
    return query(project, env, code)  # type: ignore[return-value]


def prompt_state(project: Path, env: dict[str, str], name: str) -> dict:
    code = (
        f"import mlflow.genai as g; p = g.load_prompt('prompts:/{name}@challenger');"
        f" champ = g.load_prompt('prompts:/{name}@champion', allow_missing=True);"
        " print(json.dumps({'version': p.version, 'max_tokens': (p.model_config or {}).get('max_tokens'),"
        " 'champion': champ.version if champ else None}))"
    )
    return query(project, env, code)  # type: ignore[return-value]


@pytest.mark.slow
def test_two_teams_share_one_server_without_touching_each_other(
    platform: tuple[Path, dict[str, str]], teams: dict[str, Path]
) -> None:
    _, platform_env = platform
    # The tests of this module share the two teams and the server, in any order: each one compares
    # with what it finds when it starts, never with version numbers another test may have moved.
    records = {t: json.loads((p / "reports" / "registration.json").read_text()) for t, p in teams.items()}
    assert records["alpha"]["model_name"] == "team_alpha" and records["beta"]["model_name"] == "team_beta"
    for team, record in records.items():
        assert record["alias"] == "challenger"
        assert set(record["prompts"]) == {f"team_{team}.summarize_ticket", f"team_{team}.triage_ticket"}
    # Each team's registered model holds exactly its own model's bytes
    for team, project in teams.items():
        env = team_env(project, platform_env)
        by_version = {v[0]: v for v in versions(project, env, f"team_{team}")}
        _, md5, run_id, _ = by_version[records[team]["version"]]  # challenger may have moved on since
        assert md5 == records[team]["model_md5"] and run_id == records[team]["run_id"]
    assert records["alpha"]["run_id"] != records["beta"]["run_id"]

    # Alpha promotes; beta's versions, aliases and prompts stay as they were, and its prompt is its own
    alpha, beta = teams["alpha"], teams["beta"]
    env = team_env(beta, platform_env)
    beta_before = versions(beta, env, "team_beta"), prompt_state(beta, env, "team_beta.summarize_ticket")
    # As CI's main job: register on the commit (the same bytes, the same version, tagged with it), gate, promote
    sh(alpha, "make", "register", env=team_env(alpha, platform_env))
    sh(alpha, "make", "gate", "BASE=HEAD", env=team_env(alpha, platform_env))  # promotion follows the gate
    sh(alpha, "make", "promote", env=team_env(alpha, platform_env))
    promoted = {v[0]: v[3] for v in versions(alpha, env, "team_alpha")}[records["alpha"]["version"]]
    assert "champion" in promoted
    assert (versions(beta, env, "team_beta"), prompt_state(beta, env, "team_beta.summarize_ticket")) == beta_before
    alpha_prompt = prompt_state(beta, env, "team_alpha.summarize_ticket")
    assert alpha_prompt["max_tokens"] == 48 and alpha_prompt["champion"] == alpha_prompt["version"]
    assert beta_before[1]["max_tokens"] == 40  # each team's own prompt file
    # The unprefixed names were never registered by either team
    assert query(beta, env, "print(json.dumps(len(mlflow.genai.search_prompts(\"name = 'summarize_ticket'\"))))") == 0


@pytest.mark.slow
def test_parallel_experiments_register_without_lost_or_mixed_versions(
    platform: tuple[Path, dict[str, str]], teams: dict[str, Path]
) -> None:
    _, platform_env = platform
    alpha = teams["alpha"]
    env = team_env(alpha, platform_env)
    before = versions(alpha, env, "team_alpha")
    beta_before = versions(alpha, env, "team_beta")
    for c in ("0.5", "0.2"):
        sh(alpha, "dvc", "exp", "run", "--queue", "-S", f"model.params.C={c}", env=env)
    status = run_queue(alpha, env)
    assert status.count("Success") == 2, status

    found = versions(alpha, env, "team_alpha")
    new = [v for v in found if v[0] not in {b[0] for b in before}]
    assert [v[0] for v in new] == [len(before) + 1, len(before) + 2], "one new version per experiment"
    assert len({v[1] for v in found}) == len(found) and len({v[2] for v in found}) == len(found), "no mixed entries"
    assert versions(alpha, env, "team_beta") == versions(teams["beta"], env, "team_beta")
    assert versions(alpha, env, "team_beta") == beta_before, "the other team's model untouched"


@pytest.mark.slow
def test_fresh_clone_pulls_from_s3_and_reproduces_nothing(
    platform: tuple[Path, dict[str, str]], teams: dict[str, Path], tmp_path: Path
) -> None:
    _, platform_env = platform
    alpha = teams["alpha"]
    # The team commits what it reproduced (another test may have registered again since), then pushes
    sh(alpha, "git", "add", "-A", env=team_env(alpha, platform_env))
    sh(alpha, "git", "commit", "-q", "--allow-empty", "-m", "Registered", env=team_env(alpha, platform_env))
    sh(alpha, "make", "push", env=team_env(alpha, platform_env))

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(alpha), str(clone)], check=True)
    assert not (clone / "models" / "model.joblib").exists()
    # The same installed environment as the team's first checkout: a clone needs no second install
    (clone / ".venv").symlink_to(alpha / ".venv")
    env = team_env(clone, platform_env)
    sh(clone, "dvc", "remote", "modify", "--local", "storage", "endpointurl", platform_env["MLFLOW_S3_ENDPOINT_URL"],
       env=env)  # fmt: skip
    sh(clone, "make", "check-lock", env=env)
    warm = sh(clone, "make", "repro-ci", env=env)
    # Nothing S3 holds is taken on trust: the split and the model are made again (and must be the
    # bytes dvc.lock names, `check-lock --reproduced`), the metrics recomputed; the answers come from S3
    assert sorted(ran(warm.stdout)) == ["evaluate", "prepare", "prompt_evaluate@summarize_ticket",
                                        "prompt_evaluate@triage_ticket", "train"]  # fmt: skip
    sh(clone, "dvc", "pull", env=env)
    assert (clone / "models" / "model.joblib").read_bytes() == (alpha / "models" / "model.joblib").read_bytes()
    record = "reports/registration.json"
    assert (clone / record).read_text() == (alpha / record).read_text()


def s3_request_waiting(port: int) -> bool:
    """Whether a request to the S3 server on this loopback port waits unread (the server stopped):
    the kernel's table of sockets shows bytes queued on one of its connections, or a connection
    queued for it to accept (a listening socket's receive queue)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, queues = line.split()[1], line.split()[4]
        if int(local.rpartition(":")[2], 16) == port and int(queues.partition(":")[2], 16) > 0:
            return True
    return False


@pytest.mark.slow
def test_server_killed_mid_register_then_restarted_loses_nothing(
    platform: tuple[Path, dict[str, str]], teams: dict[str, Path]
) -> None:
    from lockstep.io import file_md5
    from lockstep.platform import alive, stop

    root, platform_env = platform
    beta = teams["beta"]
    env = team_env(beta, platform_env)
    alpha_before = versions(beta, env, "team_alpha")
    before = versions(beta, env, "team_beta")
    record_file = beta / "reports" / "registration.json"
    record_before = record_file.read_text()
    conf = beta / "conf" / "model" / "logistic_regression.yaml"
    conf.write_text(re.sub(r"C: [\d.]+", "C: 0.5", conf.read_text()))  # a model beta has not registered
    sh(beta, "make", "params", env=env)
    sh(beta, "git", "commit", "-qam", "C 0.5", env=env)  # registered from a commit: what promotion allows
    sh(beta, "dvc", "repro", "evaluate", env=env)
    md5 = file_md5(beta / "models" / "model.joblib")

    # S3 stopped, register runs (on a URI with a password) until it blocks in the upload of the model's
    # artifacts, inside its MLflow run, before any version exists: there the MLflow server is killed.
    state = json.loads((root / "state.json").read_text())
    uri = platform_env["MLFLOW_TRACKING_URI"].replace("http://", "http://team:s3cret@")
    os.kill(state["pids"]["s3"], signal.SIGSTOP)
    try:
        register = subprocess.Popen(
            ["lockstep", "register"], cwd=beta, env=env | {"MLFLOW_TRACKING_URI": uri}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2400):  # polls until the upload reaches S3, bounded
            if s3_request_waiting(state["s3_port"]) or register.poll() is not None:
                break
            time.sleep(0.05)
        if register.poll() is not None or not s3_request_waiting(state["s3_port"]):
            register.kill()
            pytest.fail(f"register did not block in the upload to S3: {register.communicate()}")
        stop(state["pids"]["mlflow"], signal.SIGKILL)
        assert not alive(state["pids"]["mlflow"])
    finally:
        os.kill(state["pids"]["s3"], signal.SIGCONT)
    try:  # a guard, not a measure: with MLflow's own retries and backoff a dead server holds it for minutes
        out, err = register.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        register.kill()
        pytest.fail(f"register kept retrying the dead server: {register.communicate()}")
    assert register.returncode == 1 and out == ""
    (line,) = err.splitlines()
    redacted = uri.replace("s3cret", "***")
    assert line.startswith(f"error: register: MLflow at {redacted}: ") and "s3cret" not in err
    assert line.endswith("; start the server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db")
    assert record_file.read_text() == record_before, "no record of a registration that did not complete"

    restarted = lockstep("platform", "up", "--dir", str(root))
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    after = json.loads((root / "state.json").read_text())
    assert after["pids"]["mlflow"] != state["pids"]["mlflow"], "the MLflow server was restarted"
    assert {k: after["pids"][k] for k in ("postgres", "s3")} == {k: state["pids"][k] for k in ("postgres", "s3")}
    # What the kill left: the run it cut short, and no version or alias for those bytes
    code = (
        f"rs = mlflow.search_runs(experiment_names=['team_beta'], filter_string=\"tags.model_md5 = '{md5}'\","
        " output_format='list'); print(json.dumps([r.info.status for r in rs]))"
    )
    assert query(beta, env, code) == ["RUNNING"], "the kill came inside register's run"
    assert versions(beta, env, "team_beta") == before, "no version for the new model, no alias moved, none lost"

    again = sh(beta, "make", "repro", env=env)
    assert ran(again.stdout) == ["register"], "the re-run registers, through the restarted server"
    record = json.loads(record_file.read_text())
    sh(beta, "make", "gate", "BASE=HEAD", env=env)
    sh(beta, "make", "promote", env=env)
    found = versions(beta, env, "team_beta")
    assert [v[:3] for v in found[:-1]] == [v[:3] for v in before], "every version, its bytes and run survived"
    assert [v[:2] for v in found if v[1] == md5] == [[before[-1][0] + 1, md5]], "one version for the new model"
    assert record["version"] == found[-1][0] and record["run_id"] == found[-1][2] and record["model_md5"] == md5
    assert found[-1][3] == ["challenger", "champion"]
    assert not any(v[3] for v in found[:-1]), "the aliases moved, none left behind"
    # The new version has its lineage; the champion loads from S3 through the restarted server and
    # predicts, and so does the version registered before the restart
    code = (
        "from lockstep.registry import load_model; import mlflow.pyfunc, pandas as pd;"
        " x = pd.read_parquet('data/prepared/test.parquet').drop(columns=['diagnosis']).head(3);"
        f" old = mlflow.pyfunc.load_model('models:/team_beta/{before[-1][0]}');"
        f" tags = c.get_model_version('team_beta', '{record['version']}').tags;"
        " print(json.dumps([len(load_model('team_beta', 'champion').predict(x)), len(old.predict(x)), tags]))"
    )
    champion, old, tags = query(beta, env, code)  # type: ignore[misc]
    assert champion == old == 3
    lineage = ("git_commit", "git_dirty", "data_md5", "params_hash", "model_md5")
    assert {k: tags[k] for k in lineage} == {k: record[k] for k in lineage}
    assert {k.removeprefix("prompt."): int(v) for k, v in tags.items() if k.startswith("prompt.")} == record["prompts"]
    assert versions(beta, env, "team_alpha") == alpha_before, "the other team's versions untouched"
