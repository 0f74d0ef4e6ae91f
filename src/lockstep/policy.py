"""Promotion decisions as Rego policies, evaluated offline with regopy.

    lockstep policy eval     # allow, deny or pending_review for the registered version; decision.json
    lockstep policy test     # every test_* rule of the *_test.rego files, central and project
    lockstep approve --by NAME [--version N] [--reason TEXT]

The central bundle ships with the toolkit (lockstep/policies/*.rego: package `lockstep` holds
the decision, `lockstep.central` the rules every project gets); a project adds its own rules in
policies/ under package `lockstep.project`. The decision collects the deny and review reasons of
both, so a project can add rules but never drop a central one; a project module that declares
any other package is refused. The same files run unchanged under `opa eval` / `opa test`.

Input: the gate's checks (reports/gate/checks.json), the version's lineage and approval tags in
the registry, the DVC-tracked md5 of the data, and conf/policy (settings.yaml `policy`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lockstep.config import Params, PathsConfig, StageError, one_line
from lockstep.io import write_atomic, write_json
from lockstep.vcs import outputs_only

PROJECT_DIR = Path("policies")
GATE_DIR = Path("reports/gate")
DECISION_QUERY = "data.lockstep.decision"
DECISIONS = ("allow", "deny", "pending_review")
PROJECT_PACKAGE = re.compile(r"^lockstep\.project(_test)?(\.[\w.]+)?$")
PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
# regopy 1.5 crashes on a whole-document `with input as ...` once its values reach a comparison
WHOLE_INPUT = re.compile(r"\bwith\s+input\s+as\b")
APPROVAL_TAGS = {"by": "approval.by", "at": "approval.at", "reason": "approval.reason"}
LINEAGE = ("data_md5", "git_commit", "git_dirty", "params_hash", "model_md5")
TAG_LIMIT = 4000  # MLflow caps tag values at 5000 characters
REPORT_MARKER = "<!-- lockstep-policy -->"


# --- Modules: the central bundle and the project's ---------------------------------------------


def central_modules(tests: bool = False) -> dict[str, str]:
    """The toolkit's own policies (and their tests when asked), by file name."""
    folder = resources.files("lockstep") / "policies"
    modules = {
        f"lockstep/policies/{entry.name}": entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".rego") and (tests or not entry.name.endswith("_test.rego"))
    }
    if not modules:
        raise StageError(f"{folder}: no central policies in this install of lockstep-mlops; reinstall it")
    return modules


def project_modules(folder: Path = PROJECT_DIR, tests: bool = False) -> dict[str, str]:
    """The project's policies; each must declare package lockstep.project (or .project_test)."""
    if not folder.is_dir():
        return {}
    modules = {}
    for path in sorted(folder.rglob("*.rego")):
        if path.name.endswith("_test.rego") and not tests:
            continue
        text = path.read_text(encoding="utf-8")
        match = PACKAGE.search(text)
        if not match or not PROJECT_PACKAGE.match(match.group(1)):
            declared = match.group(1) if match else "none"
            raise StageError(
                f"{path}: package {declared}: a project's policies declare `package lockstep.project`"
                " (tests: lockstep.project_test); central rules cannot be replaced"
            )
        modules[str(path)] = text
    return modules


def interpreter(modules: dict[str, str]) -> Any:
    import regopy

    rego = regopy.Interpreter()
    for name, text in modules.items():
        try:
            rego.add_module(name, text)
        except regopy.RegoError as exc:
            raise StageError(f"{name}: not valid Rego v1: {one_line(exc, 300)}") from None
    return rego


def query(rego: Any, expression: str) -> Any:
    """The value of a Rego expression, or None when it is undefined."""
    text = str(rego.query(expression))
    if text == "undefined":
        return None
    try:
        results = json.loads(text)
    except json.JSONDecodeError:
        raise StageError(f"{expression}: the policy engine returned no JSON: {one_line(text, 300)}") from None
    results = results if isinstance(results, list) else [results]
    if not results or "expressions" not in results[0]:
        raise StageError(f"{expression}: {one_line(text, 300)}")
    return results[0]["expressions"][0]


def clean(node: Any) -> Any:
    """Input fit for regopy: 1.5 prints a string's quotes and backslashes unescaped, breaking its JSON."""
    if isinstance(node, dict):
        return {str(k): clean(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [clean(v) for v in node]
    if isinstance(node, str):
        return node.replace('"', "'").replace("\\", "/")
    return node


def evaluate(policy_input: dict[str, Any], folder: Path = PROJECT_DIR) -> dict[str, Any]:
    """The decision for this input: {decision, deny, review, approved}."""
    rego = interpreter(central_modules() | project_modules(folder))
    rego.set_input(clean(policy_input))
    decision = query(rego, DECISION_QUERY)
    if not isinstance(decision, dict) or decision.get("decision") not in DECISIONS:
        raise StageError(f"{DECISION_QUERY} is undefined for this input: a rule in {folder}/ failed to evaluate")
    return decision


# --- Input ----------------------------------------------------------------------------------------


def dvc_md5(path: Path) -> str | None:
    """The md5 DVC tracks for a data file: its .dvc file, else an entry of dvc.lock."""
    dvc_file = Path(f"{path}.dvc")
    entries: list[dict[str, Any]] = []
    if dvc_file.is_file():
        entries = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs", [])
    elif Path("dvc.lock").is_file():
        stages = (yaml.safe_load(Path("dvc.lock").read_text(encoding="utf-8")) or {}).get("stages", {})
        entries = [e for stage in stages.values() for e in (*stage.get("deps", []), *stage.get("outs", []))]
    for entry in entries:
        if Path(entry.get("path", "")) in (path, Path(path.name)) and entry.get("md5"):
            return entry["md5"]
    return None


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def rfc3339(value: str) -> str:
    """A time as regopy's time.parse_rfc3339_ns reads it: a +00:00 offset, never Z."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")
    except ValueError:
        return value  # left as it is: the policy does not count an approval it cannot read


def gate_results(gate_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((gate_dir / "checks.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        raise StageError(f"{gate_dir / 'checks.json'}: not valid JSON; run `lockstep gate` again") from None


def build_input(
    params: Params, record: dict[str, Any], tags: dict[str, str], gate_dir: Path = GATE_DIR
) -> dict[str, Any]:
    """The document the policies decide on (see lockstep/policies/central.rego)."""
    data, policy = params.need("data"), params.policy
    gate = gate_results(gate_dir)
    lineage: dict[str, Any] = {key: tags.get(key, record.get(key)) for key in LINEAGE}
    lineage["git_dirty"] = str(lineage["git_dirty"]).lower() == "true"
    approval = {key: tags[tag] for key, tag in APPROVAL_TAGS.items() if tags.get(tag)}
    if "at" in approval:
        approval["at"] = rfc3339(approval["at"])
    judged = {
        "ran": gate is not None,
        **{k: (gate or {}).get(k) for k in ("base", "head", "verdict")},
        "pending": (gate or {}).get("pending", []),
        "failures": (gate or {}).get("evaluation_failures", []),
    }
    if judged["head"] and outputs_only(lineage.get("git_commit"), judged["head"]):
        # `make repro` registers, then its outputs are committed: the gate's commit differs from the
        # version's only in what the pipeline wrote, so its results are the version's own
        judged["commit"], judged["head"] = judged["head"], lineage["git_commit"]
    return {
        "model": {"name": record.get("model_name"), "version": record.get("version")},
        "gate": judged,
        "checks": (gate or {}).get("checks", []),
        "metrics": (gate or {}).get("metrics", {}),
        "params_diff": (gate or {}).get("params_diff", {}),
        "lineage": lineage,
        "data": {"path": relative(data.path), "dvc_md5": dvc_md5(data.path)},
        "approval": approval,
        "policy": policy.model_dump(),
    }


def read_record(paths: PathsConfig) -> dict[str, Any]:
    try:
        return json.loads(paths.registration.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{paths.registration}: not found; run the pipeline first (make repro)") from None


def decide(
    client: Any,
    params: Params,
    record: dict[str, Any],
    gate_dir: Path = GATE_DIR,
    folder: Path = PROJECT_DIR,
) -> dict[str, Any]:
    """Evaluate the policies for the version in the record; write decision.json (and the report's section)."""
    version = client.get_model_version(record["model_name"], str(record["version"]))
    policy_input = build_input(params, record, dict(version.tags), gate_dir)
    started = time.perf_counter()
    decision = evaluate(policy_input, folder)
    result = {
        **decision,
        "model_uri": record.get("model_uri"),
        "version": record["version"],
        "approval": policy_input["approval"],
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "latency_ms": round(1000 * (time.perf_counter() - started), 1),
        "input": policy_input,
    }
    write_json(gate_dir / "decision.json", result)
    report = gate_dir / "report.md"
    if report.is_file():  # the pull-request comment says what was decided, and what a person must decide
        before = report.read_text(encoding="utf-8").split(REPORT_MARKER)[0].rstrip("\n")
        write_atomic(report, before + "\n\n" + markdown(result))
    return result


def decision_tags(result: dict[str, Any]) -> dict[str, str]:
    """What the registry records of a promotion decision, on the model and prompt versions alike."""
    decision = result["decision"]
    gate = result["input"]["gate"]
    tags = {"decision": decision, "pending_review": str(decision == "pending_review").lower(),
            "denied": str(decision == "deny").lower(), "decision.gate_head": str(gate.get("head")),
            "decision.gate_base": str(gate.get("base")), "decision.at": result["evaluated_at"]}  # fmt: skip
    if result["review"]:
        tags["review.reasons"] = "; ".join(result["review"])[:TAG_LIMIT]
    if result["deny"]:
        tags["deny.reasons"] = "; ".join(result["deny"])[:TAG_LIMIT]
    return tags


def record_decision(client: Any, record: dict[str, Any], result: dict[str, Any]) -> dict[str, str]:
    """The decision as tags on the model version and every prompt version it was decided for."""
    import mlflow

    tags = decision_tags(result)
    for key, value in tags.items():
        client.set_model_version_tag(record["model_name"], str(record["version"]), key, value)
        for name, version in record.get("prompts", {}).items():
            mlflow.genai.set_prompt_version_tag(name, int(version), key, value)
    return tags


def markdown(result: dict[str, Any]) -> str:
    lines = [REPORT_MARKER, f"### Promotion policy: `{result['decision']}`", ""]
    lines += [f"- ❌ {reason}" for reason in result["deny"]]
    lines += [f"- 👀 {reason}" for reason in result["review"]]
    if result["decision"] == "pending_review":
        lines += ["", f"A person must decide: `lockstep approve --version {result['version']} --reason ...` (in CI,"
                  " or as an authenticated MLflow user), then promote again."]  # fmt: skip
    if result.get("approved"):
        lines += ["", f"Approved by {result['approval'].get('by')} at {result['approval'].get('at')}."]
    return "\n".join(lines) + "\n"


def decide_registered(params: Params, gate_dir: Path = GATE_DIR, folder: Path = PROJECT_DIR) -> dict[str, Any]:
    """The decision on the version in the registration record (lockstep policy eval), recorded on it as tags."""
    from lockstep.tracking import mlflow_client

    record = read_record(params.need("paths"))
    with mlflow_client() as client:
        result = decide(client, params, record, gate_dir, folder)
        record_decision(client, record, result)  # what a canary reads before it may promote this version
    return result


def approve(params: Params, version: int | None = None, reason: str | None = None) -> tuple[str, str, str]:
    """Record an approval of a model version as registry tags: who (CI's or the registry's identity,
    never typed in), when and why; the version's URI, who and the time recorded."""
    from lockstep import aliases
    from lockstep.tracking import mlflow_client

    by = aliases.identity()
    if by is None:
        raise StageError(
            "no identity to record on a shared registry: approve from CI (GITHUB_ACTOR, GITLAB_USER_LOGIN)"
            " or as an authenticated MLflow user (MLFLOW_TRACKING_USERNAME)"
        )
    name = params.need("register").model_name
    if version is None:
        version = int(read_record(params.need("paths"))["version"])
    at = datetime.now(UTC).isoformat(timespec="seconds")
    with mlflow_client() as client:
        client.get_model_version(name, str(version))  # fails in one line when there is no such version
        client.set_model_version_tag(name, str(version), "approval.by", by)
        client.set_model_version_tag(name, str(version), "approval.at", at)
        if reason:
            client.set_model_version_tag(name, str(version), "approval.reason", reason[:TAG_LIMIT])
    return f"models:/{name}/{version}", by, at


# --- Tests: test_* rules of *_test.rego, each in a worker that a crash of the engine cannot take down --


def test_cases(modules: dict[str, str]) -> list[tuple[str, str]]:
    """(file, data.<package>.<test rule>) for every test rule of every *_test.rego module."""
    cases = []
    for name, text in modules.items():
        if not name.endswith("_test.rego"):
            continue
        package = PACKAGE.search(text)
        if package:
            cases += [(name, f"data.{package.group(1)}.{rule}") for rule in dict.fromkeys(TEST_RULE.findall(text))]
    return cases


def worker(modules_file: str, first: int) -> int:
    """Run the cases from `first` on, printing one JSON line per case (the parent restarts it on a crash)."""
    modules = json.loads(Path(modules_file).read_text(encoding="utf-8"))
    rego = interpreter(modules)
    rego.set_input({})
    for index, (_, rule) in enumerate(test_cases(modules)[first:], start=first):
        print(json.dumps({"index": index, "passed": query(rego, rule) is True}), flush=True)
    return 0


def run_tests(folder: Path = PROJECT_DIR) -> list[dict[str, Any]]:
    """Every test of both bundles: [{file, test, passed, error}]."""
    import tempfile

    modules = central_modules(tests=True) | project_modules(folder, tests=True)
    results: list[dict[str, Any]] = []
    for name, text in modules.items():
        if name.endswith("_test.rego") and WHOLE_INPUT.search(re.sub(r"#.*", "", text)):
            error = "`with input as ...` crashes regopy: set keys, `with input.<key> as ...`"
            results.append({"file": name, "test": "-", "passed": False, "error": error})
    if results:
        return results
    interpreter(modules)  # a syntax error is reported once, with its file, before any test runs
    cases = test_cases(modules)
    outcome: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "modules.json"
        bundle.write_text(json.dumps(modules), encoding="utf-8")
        first = 0
        while first < len(cases):
            child = subprocess.run(
                [sys.executable, "-m", "lockstep.policy", "--worker", str(bundle), str(first)],
                capture_output=True, text=True,
            )  # fmt: skip
            for line in child.stdout.splitlines():
                if line.startswith("{"):
                    item = json.loads(line)
                    outcome[item["index"]] = {"passed": item["passed"], "error": None}
            if child.returncode == 0:
                break
            crashed = max(outcome, default=first - 1) + 1  # the case it was running when it died
            if crashed >= len(cases):
                break
            why = one_line(child.stderr.strip().splitlines()[-1]) if child.stderr.strip() else "no message"
            error = f"the policy engine crashed (exit {child.returncode}): {why}"
            outcome[crashed] = {"passed": False, "error": error}
            first = crashed + 1
    for index, (name, rule) in enumerate(cases):
        result = outcome.get(index, {"passed": False, "error": "not run"})
        results.append({"file": name, "test": rule.rpartition(".")[2], **result})
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        raise SystemExit(worker(sys.argv[2], int(sys.argv[3])))
    raise SystemExit("usage: lockstep policy test|eval (this module's own entry point is the tests' worker)")
