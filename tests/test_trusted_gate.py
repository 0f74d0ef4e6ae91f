"""An attacker who can push a branch, and nothing else, tries to pass a regressed model through the gate.

Each scenario is a branch of a default bake (its base: `main`, reproduced and committed), pushed
as a pull request would be, then judged as CI judges it. Every one ends in `fail` or
`pending_review`, with the reason named in the report; none passes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import GIT_ID, bake, project_env, sh

pytestmark = pytest.mark.slow

REGRESS = ("conf/model/logistic_regression.yaml", "C: 1.0", "C: 0.0005")  # accuracy 0.965 -> 0.842: shown worse


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, recorded_answers: Callable[[Path], None]) -> Path:
    project = bake(tmp_path_factory.mktemp("trusted"))
    recorded_answers(project)
    sh(project, "make", "setup")
    sh(project, "make", "repro")
    sh(project, "make", "push")  # the local remote holds main's data, models and golden sets
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Reproduce the pipeline")
    return project


@pytest.fixture(autouse=True)
def clean_tree(project: Path):
    yield
    git(project, "reset", "-q", "--hard")
    git(project, "checkout", "-q", "-f", "main")
    sh(project, "dvc", "checkout", "-q", "--force", check=False)


def git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(project, "git", *args, check=check, env=project_env(project) | GIT_ID)


def edit(project: Path, file: str, old: str, new: str) -> None:
    path = project / file
    assert old in path.read_text(), f"{file}: {old!r} not found"
    path.write_text(path.read_text().replace(old, new))


def pushed(project: Path, name: str, *edits: tuple[str, str, str], message: str = "A change") -> None:
    """A branch with these edits, reproduced and committed as the project's docs ask of a developer."""
    git(project, "checkout", "-q", "-B", name, "main")
    for file, old, new in edits:
        edit(project, file, old, new)
    sh(project, "make", "repro")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


def gate(project: Path, base: str = "main") -> tuple[int, str, dict]:
    result = sh(project, "lockstep", "gate", "--base", base, check=False)  # make would turn every failure into 2
    out = project / "reports" / "gate"
    report = (out / "report.md").read_text() if (out / "report.md").exists() else result.stdout + result.stderr
    checks = json.loads((out / "checks.json").read_text()) if (out / "checks.json").exists() else {}
    return result.returncode, report, checks


def test_a_change_to_its_own_evaluation_is_measured_by_the_bases(project: Path) -> None:
    # Way 1: one word in the evaluate stage (the training rows as the test set) over a regressed model
    pushed(project, "own-evaluation", REGRESS, ("src/support_insights/stages/evaluate.py", "paths.test", "paths.train"))
    own = json.loads((project / "reports" / "metrics.json").read_text())["accuracy"]
    code, report, checks = gate(project)
    assert code == 1 and checks["verdict"] == "fail" and checks["evaluated_by"] == "base"
    assert "worse by more than the allowed 0.02" in line(report, "reports/metrics.json:accuracy")
    assert "- `src/support_insights/stages/evaluate.py` (code of a stage that measures)" in report
    assert f"| `reports/metrics.json:accuracy` | {own:.4g} | 0.8421 |" in report  # its own figure, shown as such


def test_a_change_to_what_it_is_measured_on_is_measured_on_the_bases_split(project: Path) -> None:
    # Way 2: another seed gives the worse model a friendlier test split
    pushed(project, "friendly-seed", REGRESS, ("conf/data/breast_cancer.yaml", "seed: 42", "seed: 18"))
    code, report, checks = gate(project)
    # Trained on another split, the model has seen some of the base's test rows: whatever the figures,
    # the change is never a pass, and the report names the new split for a person to judge.
    assert code in (1, 3) and checks["verdict"] in ("fail", "pending_review") and checks["evaluated_by"] == "base"
    assert "- `data.seed` 42 → 18" in report and checks["pending"] == ["`data.seed` 42 → 18"]


def test_a_new_split_alone_is_pending_review_never_a_pass(project: Path) -> None:
    pushed(project, "new-seed", ("conf/data/breast_cancer.yaml", "seed: 42", "seed: 7"))
    code, report, checks = gate(project)
    assert code == 3 and checks["verdict"] == "pending_review", report
    assert report.splitlines()[1] == "## Lockstep gate: pending review" and "- `data.seed` 42 → 7" in report


def test_a_golden_set_cut_to_its_easy_cases_fails(project: Path) -> None:
    # Way 2 again: the triage golden set cut from 36 cases to 8 (every injection case dropped)
    git(project, "checkout", "-q", "-B", "easy-cases", "main")
    golden = project / "data" / "golden" / "triage_ticket.jsonl"
    cases = golden.read_text().splitlines()
    golden.write_text("\n".join([c for c in cases if "injection" not in c][:8]) + "\n")
    sh(project, "dvc", "add", "-q", "data/golden/triage_ticket.jsonl")
    sh(project, "make", "repro")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Fewer cases")
    code, report, checks = gate(project)
    assert code == 1 and checks["verdict"] == "fail"
    cut = "golden set `data/golden/triage_ticket.jsonl` has 8 cases, the base's 36: fewer cases fail"
    assert f"- ❌ {cut}" in report and checks["evaluation_failures"] == [cut]
    assert "- golden set `data/golden/triage_ticket.jsonl`" in report  # and the change is named for review


def test_tests_that_edit_the_installed_gate_cannot_judge(project: Path) -> None:
    # Way 3: the change's own conftest patches the gate during `make test`, which ran before `make gate`
    git(project, "checkout", "-q", "-B", "patched-gate", "main")
    gate_py = sh(project, "python", "-c", "import lockstep.commands.gate as g; print(g.__file__)").stdout.strip()
    conftest = project / "tests" / "conftest.py"
    patch = (
        '\n\n@pytest.fixture(autouse=True, scope="session")\ndef _speed_up() -> None:\n'
        "    import lockstep.commands.gate\n\n    gate = Path(lockstep.commands.gate.__file__)\n"
        "    text = gate.read_text().replace('\"fail\": ExitCode.FAILED', '\"fail\": ExitCode.OK')\n"
        "    gate.unlink()\n    gate.write_text(text)\n"
    )  # every verdict a pass, as the ruff-clean fixture a branch could carry. (A new file: uv hardlinks
    # installed files to its cache, so an edit in place would reach every project of this machine.)
    original = Path(gate_py).read_bytes()
    try:
        conftest.write_text(conftest.read_text() + patch)
        edit(project, *REGRESS)
        sh(project, "make", "repro")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "Regressed, with a helping conftest")
        result = sh(project, "make", "ci", "BASE=main", check=False)
        assert result.returncode != 0
        out = result.stdout + result.stderr
        assert "error: gate: the environment was changed after it was installed" in out
        assert "lockstep/commands/gate.py: changed" in out and "gate: passed" not in out
    finally:
        Path(gate_py).unlink()
        Path(gate_py).write_bytes(original)


def test_model_bytes_from_the_remote_that_do_not_reproduce_are_refused(project: Path) -> None:
    # Way 4: a model fitted on the test split, pushed to the remote, and its md5 committed in dvc.lock
    git(project, "checkout", "-q", "-B", "crafted", "main")
    code = (
        "import joblib, pandas as pd; m = joblib.load('models/model.joblib');"
        " t = pd.read_parquet('data/prepared/test.parquet'); y = (t['diagnosis'] == 'malignant').astype(int);"
        " m.fit(t.drop(columns=['diagnosis']), y); joblib.dump(m, 'models/model.joblib')"
    )
    sh(project, "python", "-c", code)
    sh(project, "dvc", "commit", "-q", "-f", "train")
    sh(project, "dvc", "push", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Only md5s change")
    changed = git(project, "diff", "--name-only", "main", "HEAD").stdout.split()
    assert changed == ["dvc.lock"], changed  # all a reviewer sees
    sh(project, "rm", "-rf", "models", ".dvc/cache")  # a fresh runner: the model comes from the remote
    result = sh(project, "make", "repro-ci", check=False)
    assert result.returncode != 0
    assert "train: models/model.joblib reproduces as md5" in result.stderr
    assert "error: the committed dvc.lock names outputs that the committed code and data do not make" in result.stderr
    sh(project, "dvc", "pull", "-q", check=False)


def test_main_gates_every_commit_that_landed(project: Path) -> None:
    # Way 5: two commits land together; the last one alone changes nothing measurable
    before = git(project, "rev-parse", "main").stdout.strip()
    pushed(project, "two-commits", REGRESS, message="Regress")
    (project / "NOTES.md").write_text("A note.\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-q", "-m", "A note")
    # What main used to compare with sees no change (the model is below min either way: absolute limits
    # need no base); what main compares with now, the push's `before` commit, sees the regression
    _, report, _ = gate(project, "HEAD~1")
    assert "| -0" not in line(report, "reports/metrics.json:accuracy") and "worse by more" not in report
    code, report, _ = gate(project, before)
    assert code == 1 and "worse by more than the allowed 0.02" in line(report, "reports/metrics.json:accuracy")


def test_promotion_needs_a_decision_on_the_versions_own_commit(project: Path) -> None:
    # Way 6: checks.json of another commit, a version tagged deny, a champion moved by hand
    env = project_env(project)
    git(project, "checkout", "-q", "-B", "other-checks", "main")
    sh(project, "make", "gate", "BASE=main")
    checks = project / "reports" / "gate" / "checks.json"
    data = json.loads(checks.read_text())
    checks.write_text(json.dumps(data | {"head": "f" * 40}))  # the gate's results of another commit
    result = sh(project, "lockstep", "promote", check=False, env=env)
    assert result.returncode == 1
    assert f"deny: the gate's results are for commit {'f' * 40}, the version was registered from" in result.stdout
    # The denied version cannot be locked as stable, even with champion moved to it by hand
    record = json.loads((project / "reports" / "registration.json").read_text())
    move = ("import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); c = mlflow.MlflowClient();"
            f" c.set_registered_model_alias('support_insights', 'champion', '{record['version']}');"
            f" [mlflow.genai.set_prompt_alias(n, alias='champion', version=v)"
            f" for n, v in {record['prompts']!r}.items()]")  # fmt: skip
    sh(project, "python", "-c", move)
    lock = sh(project, "make", "deploy-lock", check=False)
    assert lock.returncode != 0 and "deploy lock: refused: stable (@champion)" in lock.stderr
    assert "has no promotion decision allow (decision: deny)" in lock.stderr


def line(report: str, metric: str) -> str:
    """The metric's row of the checks table (metric, base, new, change, interval, rule, verdict)."""
    (found,) = [row for row in report.splitlines() if row.startswith(f"| `{metric}` |") and row.count(" | ") == 6]
    return found


def test_the_gate_input_names_what_the_verdict_rests_on(project: Path) -> None:
    git(project, "checkout", "-q", "-B", "same", "main")
    (project / "NOTES.md").write_text("Nothing measured changes.\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-q", "-m", "A note")
    code, report, checks = gate(project)
    assert code == 0 and checks["verdict"] == "pass" and checks["evaluated_by"] == "base", report
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert set(checks["inputs"]["golden_md5"]) == set(params["prompts"]["names"])
    assert len(checks["inputs"]["test_split_md5"]) == 32 and not checks["disagree"]
