"""The generated CI cannot be turned against the project: checked offline on every CI x remote bake.

Workflows are audited with zizmor (regular and auditor personas) and actionlint, and asserted on once parsed:
pull-request jobs hold no secret, the job that comments runs no code from the pull request, the
main job gates before it registers, untrusted values reach scripts only through the environment.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, bake

BIN = Path(sys.executable).parent
ZIZMOR, ACTIONLINT = str(BIN / "zizmor"), str(BIN / "actionlint")
REMOTES = ["none", "local", "s3", "gcs", "azure"]
SHA_PIN = re.compile(r"^[^@\s]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
WRITE_SECRETS = re.compile(r"AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|GOOGLE_APPLICATION_CREDENTIALS|AZURE_STORAGE|"
                           r"GCP_SERVICE_ACCOUNT|MLFLOW_TRACKING_URI|GITLAB_NOTE_TOKEN")  # fmt: skip


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[tuple[str, str], Path] = {}

    def get(ci: str, remote: str) -> Path:
        if (ci, remote) not in cache:
            out = tmp_path_factory.mktemp(f"{ci}-{remote}")
            cache[ci, remote] = bake(out, ci_provider=ci, dvc_remote=remote, init_git="no")
        return cache[ci, remote]

    return get


def run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def audit(path: Path) -> None:
    """zizmor (offline; the regular persona and the auditor's, which reports every finding) and actionlint
    report nothing."""
    for persona in ("regular", "auditor"):
        zizmor = run(ZIZMOR, "--offline", "--no-progress", "--persona", persona, ".", cwd=path)
        assert zizmor.returncode == 0 and "No findings" in zizmor.stdout, persona + zizmor.stdout + zizmor.stderr
    workflows = sorted(str(p.relative_to(path)) for p in (path / ".github" / "workflows").glob("*.y*ml"))
    actionlint = run(ACTIONLINT, "-no-color", *workflows, cwd=path)
    assert actionlint.returncode == 0 and not actionlint.stdout, actionlint.stdout + actionlint.stderr


def steps_text(job: dict) -> str:
    return json.dumps({k: v for k, v in job.items() if k in ("env", "steps", "with", "container", "services")})


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


# The make targets that run the project's own code (stages, tests, hooks), and building its image
PROJECT_CODE = re.compile(r"\bmake (pre-commit|test|repro|repro-ci|repro-pull|retrain-branch|exp|ci)\b|docker build")


def secrets_of(job: dict, step: dict) -> set[str]:
    """The write secrets a step can read: secrets in its job's env and its own (read-only DVC_READ_* are not)."""
    env = {**job.get("env", {}), **step.get("env", {})}
    return {name for name, value in env.items() if "secrets." in str(value) and not name.startswith("DVC_READ_")}


GITHUB = list(itertools.product(["github", "both"], REMOTES))


@pytest.mark.parametrize(("ci", "remote"), GITHUB, ids=[f"{c}-{r}" for c, r in GITHUB])
def test_generated_workflow_is_clean_under_zizmor_and_actionlint(baked, ci: str, remote: str) -> None:
    audit(baked(ci, remote))


@pytest.mark.parametrize(("ci", "remote"), GITHUB, ids=[f"{c}-{r}" for c, r in GITHUB])
def test_generated_workflow_keeps_secrets_out_of_pull_request_jobs(baked, ci: str, remote: str) -> None:
    project = baked(ci, remote)
    text = (project / ".github" / "workflows" / "pipeline.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    jobs = workflow["jobs"]
    assert set(jobs) == {"checks", "gate", "report", "main", "build-image", "staging", "canary"}
    assert workflow["permissions"] == {}
    assert "secrets." not in json.dumps(workflow.get("env", {})), "no secret in the workflow-level env"
    # Pull-request jobs: least privilege, no write secret (read-only DVC_READ_* ones at most)
    for job in ("checks", "gate"):
        assert jobs[job]["permissions"] == {"contents": "read"}
    assert jobs["report"]["permissions"] == {"pull-requests": "write"}
    gate_secrets = set(re.findall(r"secrets\.(\w+)", steps_text(jobs["gate"])))
    assert all(name.startswith("DVC_READ_") for name in gate_secrets), gate_secrets
    assert "secrets." not in steps_text(jobs["report"]) + steps_text(jobs["checks"])
    for job in ("checks", "gate", "report"):
        assert "pull_request" in jobs[job]["if"]
        assert not re.search(r"secrets\.(?!DVC_READ_)", steps_text(jobs[job]))
    # The gate's environment, when it has one, holds only the read-only DVC secrets
    assert jobs["gate"].get("environment") == ("dvc-read" if remote in ("s3", "gcs", "azure") else None)
    assert "environment" not in jobs["checks"] and "environment" not in jobs["report"]
    # Tests and hooks run apart from the gate, which runs neither
    assert {"make pre-commit", "make test"} <= set(runs(jobs["checks"]))
    assert not re.search(r"\bmake (test|pre-commit)\b", "\n".join(runs(jobs["gate"])))
    # Write credentials and the registry only in main, behind the environment, step by step
    assert jobs["main"]["environment"] == "production" and "env" not in jobs["main"]
    assert jobs["main"]["permissions"] == {"contents": "read"}
    holders = {s.get("name", s.get("run", "")): secrets_of(jobs["main"], s) for s in jobs["main"]["steps"]}
    assert {name for name, held in holders.items() if held} == (
        {"make push", "make register", "make promote"}
        if remote in ("s3", "gcs", "azure")
        else {"make register", "make promote"}
    )
    if remote in ("s3", "gcs", "azure"):
        assert gate_secrets, "the gate job may restore the run-cache with read-only credentials"
    # Checkout never leaves its token behind; every action is pinned to a commit with its version
    for job in jobs.values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert uses and all(SHA_PIN.match(u) for u in uses), [u for u in uses if not SHA_PIN.match(u)]


@pytest.mark.parametrize(("ci", "remote"), GITHUB, ids=[f"{c}-{r}" for c, r in GITHUB])
def test_no_step_that_runs_project_code_holds_a_write_secret(baked, ci: str, remote: str) -> None:
    checked = 0
    for workflow in sorted((baked(ci, remote) / ".github" / "workflows").glob("*.yml")):
        for name, job in yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"].items():
            for step in job["steps"]:
                if PROJECT_CODE.search(step.get("run", "")):
                    checked += 1
                    assert not secrets_of(job, step), f"{workflow.name}: {name}: {step.get('name', step['run'])}"
    assert checked >= 8  # checks' hooks and tests, the gate's and main's repro-ci, the image, staging, monitor...


@pytest.mark.parametrize("remote", REMOTES)
def test_report_job_runs_no_code_from_the_pull_request(baked, remote: str) -> None:
    jobs = yaml.safe_load((baked("github", remote) / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"]
    report = jobs["report"]
    assert report["needs"] == ["checks", "gate"] and "always()" in report["if"]
    assert [s["uses"].split("@")[0] for s in report["steps"] if "uses" in s] == ["actions/download-artifact"]
    script = "\n".join(runs(report))
    assert not re.search(r"(^|[;&|]\s*)(make|pip|uv|python3?|lockstep|\.venv/\S+|dvc|pytest)\b", script, re.M), script
    assert 'gh pr comment "$PR" --body-file comment.md' in script and "--edit-last --create-if-none" in script
    assert "GITHUB_STEP_SUMMARY" in script
    # The verdict is the gate job's result as GitHub reports it; the report's own heading is dropped
    step = next(s for s in report["steps"] if "gh pr comment" in s.get("run", ""))
    assert step["env"]["GATE"] == "${{ needs.gate.result }}"
    assert 'echo "## Lockstep gate: $verdict"' in script and "is the authority" in script
    assert "grep -v -e '^<!-- lockstep-gate -->$' -e '^## Lockstep gate:'" in script
    upload = [s for s in jobs["gate"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload and upload[0]["with"]["name"] == "gate-report" and upload[0]["if"] == "always()"


def test_the_comment_states_the_gate_jobs_result_whatever_the_report_says(baked, tmp_path: Path) -> None:
    # The report job's script, run as bash runs it: a forged "passed" report under a failed gate job
    jobs = yaml.safe_load((baked("github", "none") / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"]
    script = next(s["run"] for s in jobs["report"]["steps"] if "gh pr comment" in s.get("run", ""))
    report = tmp_path / "gate-report" / "reports" / "gate" / "report.md"
    report.parent.mkdir(parents=True)
    report.write_text("<!-- lockstep-gate -->\n## Lockstep gate: passed\n\n✅ **Gate passed**: forged\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text("#!/bin/sh\nexit 0\n")
    (fake / "gh").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "GATE": "failure", "CHECKS": "success",
           "PR": "7", "REPORT": str(report), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}  # fmt: skip
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    comment = (tmp_path / "comment.md").read_text().splitlines()
    assert comment[:2] == ["<!-- lockstep-gate -->", "## Lockstep gate: ❌ did not pass (failure)"]
    assert "## Lockstep gate: passed" not in comment and "✅ **Gate passed**: forged" in comment


@pytest.mark.parametrize("remote", REMOTES)
def test_main_job_gates_the_landed_commits_before_it_registers_and_promotes(baked, remote: str) -> None:
    jobs = yaml.safe_load((baked("github", remote) / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"]
    steps = jobs["main"]["steps"]
    order = [
        i for i, s in enumerate(steps) if re.search(r"\bmake (repro-ci|gate|register|promote)\b", s.get("run", ""))
    ]
    called = [re.search(r"\bmake (repro-ci|gate|register|promote)\b", steps[i]["run"]).group(1) for i in order]
    assert called == ["repro-ci", "gate", "register", "promote"]
    gate = steps[order[1]]
    assert "continue-on-error" not in gate and "if" not in gate, "a failed gate stops the job before promotion"
    assert gate["env"] == {"BEFORE": "${{ github.event.before }}"} and 'BASE="$BEFORE" make gate' in gate["run"]
    assert "HEAD~1" not in gate["run"], "every commit of the push is gated, not the last one"
    for step in (steps[order[2]], steps[order[3]]):  # no registry, no promotion, without the shared registry
        assert step["env"] == {"MLFLOW_TRACKING_URI": "${{ secrets.MLFLOW_TRACKING_URI }}"}
        assert step["run"].startswith('if [ -z "$MLFLOW_TRACKING_URI" ]; then') and "exit 1" in step["run"]


@pytest.mark.parametrize("remote", ["none", "s3"])
def test_image_staging_and_canary_jobs_run_on_main_after_the_gate(baked, remote: str) -> None:
    workflow = yaml.safe_load((baked("github", remote) / ".github" / "workflows" / "pipeline.yml").read_text())
    jobs = workflow["jobs"]
    assert set(workflow[True]) == {"pull_request", "push", "workflow_dispatch"}  # `on:`
    # Only the image job may write packages, only after main (gate, register, promote), only on main
    writers = {name for name, job in jobs.items() if "write" in job.get("permissions", {}).get("packages", "")}
    assert writers == {"build-image"}
    image = jobs["build-image"]
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    assert image["needs"] == "main" and image["environment"] == "image"
    assert image["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    script = "\n".join(runs(image))
    assert script.index("make deploy-lock") < script.index("docker build") < script.index("docker push")
    assert 'docker build "${build_args[@]}"' in script and "lockstep deploy build-args" in script
    assert "--password-stdin" in script and "make manifests" in script
    login = next(s for s in image["steps"] if "docker login" in s.get("run", ""))
    assert login["env"]["GH_TOKEN"] == "${{ github.token }}"
    build = next(s for s in image["steps"] if "docker build" in s.get("run", ""))
    assert "env" not in image and "GH_TOKEN" not in json.dumps(build), "the project's Dockerfile builds with no token"
    # Staging evaluates what the image locked, after it was pushed; no write permission
    staging = jobs["staging"]
    assert staging["needs"] == "build-image" and staging["if"] == image["if"]
    assert staging["permissions"] == {"contents": "read"}
    download = [s for s in staging["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download and download[0]["with"]["name"] == "deploy"
    assert "make staging" in runs(staging)[-1]
    # The canary only when started by hand on main, behind its environment's reviewers
    canary = jobs["canary"]
    assert canary["if"] == "github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'"
    assert canary["environment"] == "canary" and canary["permissions"] == {"contents": "read"}
    assert canary["concurrency"]["cancel-in-progress"] is False
    assert any(r.startswith('.venv/bin/lockstep canary --url "$CANARY_URL"') for r in runs(canary))
    for name in ("checks", "gate", "report", "main"):
        assert "workflow_dispatch" not in jobs[name].get("if", ""), f"{name} must not run when the canary is started"


@pytest.mark.parametrize("remote", ["none", "s3"])
def test_gitlab_image_staging_and_canary_jobs_follow_the_gate(baked, remote: str) -> None:
    ci = yaml.safe_load((baked("gitlab", remote) / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    promote = "\n".join(ci["promote"]["script"])
    assert (
        promote.index("make promote") < promote.index("make deploy-lock") < promote.index("lockstep deploy build-args")
    )
    on_main = {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}
    never_scheduled = {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"}
    image = ci["build-image"]
    assert image["rules"] == [never_scheduled, on_main]
    assert image["needs"] == [{"job": "promote", "artifacts": True}]
    assert image["before_script"] == [] and image["cache"] == [], "no project code, no shared cache"
    script = "\n".join(image["script"])
    assert "--password-stdin" in script and 'docker push "$tag"' in script
    # Only the image job sees the registry's credentials; none sees another job's write secrets
    for name, job in ci.items():
        if isinstance(job, dict) and "script" in job and name != "build-image":
            assert "CI_REGISTRY_PASSWORD" not in json.dumps(job), name
    assert not WRITE_SECRETS.search(script)
    staging = ci["staging"]
    assert staging["rules"] == [never_scheduled, on_main]
    assert {"job": "build-image", "artifacts": True} in staging["needs"]
    assert {"job": "main", "artifacts": True} in staging["needs"]
    assert staging["script"][0] == "make staging" and "make manifests" in staging["script"][-1]
    assert not PROJECT_CODE.search("\n".join(staging["script"])), "no project stage beside the registry's credentials"
    canary = ci["canary"]
    assert canary["rules"] == [never_scheduled, {**on_main, "when": "manual"}]
    assert canary["environment"]["name"] == "canary" and canary["interruptible"] is False
    assert {"job": "staging"} in canary["needs"]
    assert canary["script"] == ['.venv/bin/lockstep canary --url "$CANARY_URL"']


@pytest.mark.parametrize("ci", ["github", "both"])
def test_untrusted_values_never_reach_a_script_unquoted(baked, ci: str) -> None:
    workflow = yaml.safe_load((baked(ci, "s3") / ".github" / "workflows" / "pipeline.yml").read_text())
    for name, job in workflow["jobs"].items():
        for script in runs(job):
            assert "${{" not in script, f"{name}: an expression pasted into run: {script}"
    gate = next(s for s in workflow["jobs"]["gate"]["steps"] if s.get("id") == "gate")
    assert gate["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert gate["run"].startswith('BASE="origin/$BASE_REF" make gate')


def test_zizmor_would_catch_a_branch_name_pasted_into_run(baked, tmp_path: Path) -> None:
    """The audit is live: the old way of passing the base branch is reported."""
    project = baked("github", "none")
    workflow = project / ".github" / "workflows" / "pipeline.yml"
    bad = tmp_path / "bad" / ".github" / "workflows"
    bad.mkdir(parents=True)
    pasted = "make gate BASE=origin/${{ github.base_ref }}"
    (bad / "pipeline.yml").write_text(workflow.read_text().replace('BASE="origin/$BASE_REF" make gate', pasted))
    result = run(ZIZMOR, "--offline", "--no-progress", ".", cwd=tmp_path / "bad")
    assert result.returncode != 0 and "template-injection" in result.stdout, result.stdout


def test_a_branch_name_with_shell_metacharacters_reaches_the_gate_as_data(baked, tmp_path: Path) -> None:
    project = baked("gitlab", "none")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "lockstep").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (fake / "lockstep").chmod(0o755)
    branch = "origin/x;touch${IFS}pwned`touch${IFS}pwned2`$(touch${IFS}pwned3)"
    env = {**os.environ, "BASE": branch}
    result = subprocess.run(["make", "-s", "gate", f"BIN={fake}"], cwd=project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["gate", "--base", branch]
    assert not list(project.glob("pwned*"))


@pytest.mark.parametrize("remote", REMOTES)
def test_gitlab_ci_keeps_credentials_in_the_default_branch_job(baked, remote: str) -> None:
    project = baked("gitlab", remote)
    text = (project / ".gitlab-ci.yml").read_text(encoding="utf-8")
    ci = yaml.safe_load(text)
    assert re.fullmatch(r"python:3\.\d+-bookworm", ci["default"]["image"].split()[0]), "a named image, not a bare tag"
    for name, value in ci["variables"].items():
        assert not WRITE_SECRETS.search(f"{name} {value}")
    # The merge request's code runs in checks (hooks, tests) and merge-request (repro, gate): no credential
    checks, mr = ci["checks"], ci["merge-request"]
    assert checks["script"] == ["make pre-commit", "make test"]
    assert checks["cache"]["key"]["prefix"] != mr["cache"]["key"]["prefix"], "the gate never restores checks' cache"
    script = "\n".join(mr["script"])
    assert not re.search(r"\bmake (test|pre-commit)\b", script)
    for job in (checks, mr):
        assert not re.search(r"\$\{?(" + WRITE_SECRETS.pattern + ")", "\n".join(job["script"]))
        assert "environment" not in job
    for line in mr["script"]:
        for m in re.finditer(r"\$CI_MERGE_REQUEST_TARGET_BRANCH_NAME", line):
            before = line[: m.start()]
            assert before.count('"') % 2 == 1, f"unquoted target branch: {line}"
    assert 'BASE="origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" make gate' in script
    # The note token: only a scheduled job on the default branch, which runs no merge request's code
    assert not any("merge_request_event" in json.dumps(job.get("rules", [])) for name, job in ci.items()
                   if isinstance(job, dict) and "GITLAB_NOTE_TOKEN" in json.dumps(job))  # fmt: skip
    notes = ci["merge-request-notes"]
    assert notes["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule" && $LOCKSTEP_TASK == "notes"'
                                     " && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]  # fmt: skip
    assert notes["script"] == ["make report-gitlab"] and "environment" not in notes
    assert "GITLAB_NOTE_TOKEN" in text and "Protected and Masked" in text
    # main reproduces and gates the commits that landed, holding no credential; promote holds them
    main, promote = ci["main"], ci["promote"]
    assert "environment" not in main
    main_script = "\n".join(main["script"])
    assert main_script.index("make repro-ci") < main_script.index("make gate")
    assert 'BASE="$CI_COMMIT_BEFORE_SHA" make gate' in main_script and "HEAD~1" not in main_script
    assert promote["environment"]["name"] == "production" and promote["needs"] == [{"job": "main", "artifacts": True}]
    promote_script = "\n".join(promote["script"])
    assert not PROJECT_CODE.search(promote_script), "no project code beside the write credentials"
    assert promote_script.index("MLFLOW_TRACKING_URI is not set") < promote_script.index("make register")
    assert promote_script.index("make register") < promote_script.index("make promote")
    for name, job in ci.items():  # every job that runs the project's code holds no environment's secrets
        if isinstance(job, dict) and PROJECT_CODE.search("\n".join(map(str, job.get("script", [])))):
            assert "environment" not in job, name


def test_template_ci_is_clean_under_zizmor_and_actionlint() -> None:
    for persona in ("regular", "auditor"):
        files = (".github/workflows/ci.yml", ".github/dependabot.yml")
        zizmor = run(ZIZMOR, "--offline", "--no-progress", "--persona", persona, *files, cwd=ROOT)
        assert zizmor.returncode == 0 and "No findings" in zizmor.stdout, persona + zizmor.stdout + zizmor.stderr
    actionlint = run(ACTIONLINT, "-no-color", ".github/workflows/ci.yml", cwd=ROOT)
    assert actionlint.returncode == 0 and not actionlint.stdout, actionlint.stdout


@pytest.mark.parametrize("ci", ["github", "gitlab", "both", "none"])
def test_review_and_update_configuration(baked, ci: str) -> None:
    project = baked(ci, "s3")
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    exclude = re.compile(hooks["exclude"])
    assert not exclude.search(".dvc/config"), "the secrets hooks must read .dvc/config"
    assert exclude.search(".dvc/.gitignore") and exclude.search(".dvc/tmp/x")
    ids = {h["id"]: h for repo in hooks["repos"] for h in repo["hooks"]}
    if ci == "none":
        assert not (project / "CODEOWNERS").exists() and not (project / "tests" / "test_codeowners.py").exists()
        return
    owners = (project / "CODEOWNERS").read_text()
    rules = dict(line.split() for line in owners.splitlines() if line and not line.startswith("#"))
    assert {"/conf/", "/policies/", "/dvc.yaml", "/params.yaml", "/tests/", "*.dvc", "/.dvc/config", "/pyproject.toml",
            "/requirements.lock", "/src/support_insights/stages/", "/data/golden/"} <= set(rules)  # fmt: skip
    assert (project / "tests" / "test_codeowners.py").exists()  # the project's own check of the list
    assert set(rules.values()) == {"@support-insights-maintainers"}
    if ci in ("github", "both"):
        assert "/.github/" in rules
        assert ids["zizmor"]["entry"].startswith(".venv/bin/zizmor --offline")
        assert ids["actionlint"]["entry"] == ".venv/bin/actionlint"
        dependabot = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
        assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"github-actions", "pip", "docker"}
        for workflow in (project / ".github" / "workflows").glob("*.yml"):
            jobs = yaml.safe_load(workflow.read_text())["jobs"].values()
            assert {job["runs-on"] for job in jobs} == {"ubuntu-24.04"}, f"{workflow.name}: a fixed runner image"
    if ci in ("gitlab", "both"):
        assert "/.gitlab-ci.yml" in rules
        renovate = json.loads((project / "renovate.json").read_text())
        assert {"gitlabci", "dockerfile"} <= set(renovate["enabledManagers"])
        assert renovate["packageRules"] == [{"matchDatasources": ["docker"], "pinDigests": True}]
    else:
        assert not (project / "renovate.json").exists()


@pytest.mark.parametrize("remote", ["none", "s3"])
def test_monitor_workflow_requests_retraining_through_a_pull_request(baked, remote: str) -> None:
    text = (baked("both", remote) / ".github" / "workflows" / "monitor.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    assert workflow["permissions"] == {} and set(workflow[True]) == {"schedule", "workflow_dispatch"}  # `on:`
    jobs = workflow["jobs"]
    assert set(jobs) == {"monitor", "retrain"}
    assert jobs["monitor"]["permissions"] == {"contents": "read"}
    assert "make monitor" in "\n".join(runs(jobs["monitor"]))
    retrain = jobs["retrain"]
    assert retrain["needs"] == "monitor" and "retrain == 'true'" in retrain["if"]
    assert retrain["permissions"] == {"contents": "write", "pull-requests": "write"}
    script = "\n".join(runs(retrain))
    assert "make retrain-branch" in script and "gh pr create" in script
    assert script.index("make retrain-branch") < script.index("gh pr create")
    for job in jobs.values():
        assert job["environment"] == "production" and "env" not in job
        for s in runs(job):
            assert "${{" not in s
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert uses and all(SHA_PIN.match(u) for u in uses)
    gitlab = yaml.safe_load((baked("both", remote) / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    scheduled = [{"if": '$CI_PIPELINE_SOURCE == "schedule" && $LOCKSTEP_TASK != "notes"'}]
    for name in ("monitor-data", "monitor", "monitor-retrain", "monitor-merge-request"):
        assert gitlab[name]["rules"] == scheduled, name
    assert gitlab["monitor"]["allow_failure"] == {"exit_codes": [4]}
    assert gitlab["monitor-data"]["script"] == ["make repro-ci"] and "environment" not in gitlab["monitor-data"]
    assert gitlab["main"]["rules"][0] == {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"}
    retrain, opener = gitlab["monitor-retrain"], gitlab["monitor-merge-request"]
    assert retrain["needs"] == [{"job": "monitor", "artifacts": True}] and "environment" not in retrain
    assert "make retrain-branch" in "\n".join(retrain["script"]) and "git bundle create" in "\n".join(retrain["script"])
    assert opener["environment"]["name"] == "production" and opener["needs"] == [
        {"job": "monitor-retrain", "artifacts": True}
    ]
    opened = "\n".join(opener["script"])
    assert "lockstep retrain gitlab-mr" in opened and not PROJECT_CODE.search(opened)


@pytest.mark.parametrize("remote", ["none", "s3"])
def test_the_pull_requests_pipeline_replays_the_models_answers_and_the_gate_does_not(baked, remote: str) -> None:
    # LOCKSTEP_LLM_CACHE=replay where the head's pipeline is re-made (a case without a recorded answer
    # fails, the model is never called), set in the CI file itself; not on the gate, whose base's
    # evaluation answers the head's new cases live from the base's entries (lockstep.trusted), nor in CI at large
    project = baked("both", remote)
    jobs = yaml.safe_load((project / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"]
    steps = {step.get("id"): step for step in jobs["gate"]["steps"]}
    assert steps["repro"]["env"]["LOCKSTEP_LLM_CACHE"] == "replay" and "make repro-ci" in steps["repro"]["run"]
    assert "LOCKSTEP_LLM_CACHE" not in json.dumps(steps["gate"]) + json.dumps(jobs["gate"].get("env", {}))
    gitlab = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    assert "LOCKSTEP_LLM_CACHE=replay make repro-ci || status=1" in gitlab["merge-request"]["script"]
    assert "LOCKSTEP_LLM_CACHE" not in json.dumps(gitlab.get("variables", {}))
    assert not [s for s in gitlab["merge-request"]["script"] if "make gate" in s and "LOCKSTEP_LLM_CACHE" in s]
