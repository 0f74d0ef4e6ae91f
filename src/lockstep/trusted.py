"""The base's evaluation of a change: what decides the gate is defined by the merge base, not the change.

A pull request owns its model and its prompts; it does not own how they are measured. The gate
therefore measures them again with the merge base's own procedure, in a Git worktree of that
commit: the base's prepare stage makes the base's split (its seed, test size, stratification,
data), the base's evaluate stage scores this change's model file on it, and this change's prompts
are scored on the base's golden sets with the base's scorers. The rules then judge those figures.

A change to any of that procedure (the split's or the scorers' parameters, the stages' code or
definitions, the data, the golden sets, the toolkit) is listed by `procedure_changes`: the gate's
verdict is then `pending_review`, naming each one, and never a pass, so a person decides whether
the new procedure is right. A golden set with fewer cases than the base's fails outright.

The worktree runs the base's code (reviewed, merged) with the project's environment; the stages
see the base's package first on PYTHONPATH. Nothing of the worktree outlives the gate.

This change's prompts are answered there again, never taken from the change's own answers file
(a file the change could have written by hand). The record/replay cache of the language model's
answers (lockstep.llm_cache) is a file per answer that anyone can write, so the worktree replays
only the entries the base's dvc.lock names (`base_answers`, merged and reviewed): an unchanged
prompt is answered from them at once, and every other case is asked of the model; the change's
own entries are never read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lockstep.config import StageError, flatten, one_line
from lockstep.io import file_md5
from lockstep.llm_cache import ENV as LLM_CACHE_ENV
from lockstep.vcs import dvc, git

# The parameters that define how a model is measured: which rows it is measured on, and how
SPLIT = ("data.path", "data.target", "data.task", "data.positive_class", "data.features", "data.test_size",
         "data.seed", "data.engine")  # fmt: skip
SCORING = ("prompts.banned_phrases", "toolkit_version")
STAGES = ("prepare", "evaluate", "prompt_outputs", "prompt_evaluate")  # whose definitions and code measure


@dataclass
class Evaluation:
    """The base's evaluation of this change's model and prompts."""

    values: dict[str, float | None] = field(default_factory=dict)  # "<file>:<key>" -> value measured
    changes: list[str] = field(default_factory=list)  # what of the procedure this change changes
    failures: list[str] = field(default_factory=list)  # a golden set cut short, and the like
    inputs: dict[str, Any] = field(default_factory=dict)  # hashes of the split and golden sets used
    cases: dict[str, str] = field(default_factory=dict)  # per-case files it wrote (lockstep.cases), by path


def committed(rev: str, path: str) -> str | None:
    return git("show", f"{rev}:{path}", check=False) or None


def stage_definitions(text: str | None) -> dict[str, Any]:
    """The measuring stages of a dvc.yaml, as written (before interpolation)."""
    stages = (yaml.safe_load(text) if text else {}) or {}
    return {k: v for k, v in (stages.get("stages") or {}).items() if k in STAGES}


def stage_code(definitions: dict[str, Any]) -> set[str]:
    """The code files the measuring stages depend on (Python files in their deps)."""
    files = set()
    for stage in definitions.values():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        files |= {d for d in body.get("deps", []) if isinstance(d, str) and d.endswith(".py")}
    return files


def dvc_pointers(rev: str) -> dict[str, str]:
    """Every .dvc file at a revision, with the md5 of what it tracks (data, golden sets)."""
    listed = git("ls-tree", "-r", "--name-only", rev, check=False).splitlines()
    pointers = {}
    for path in (p for p in listed if p.endswith(".dvc")):
        outs = (yaml.safe_load(committed(rev, path) or "") or {}).get("outs") or [{}]
        pointers[path] = str(outs[0].get("md5"))
    return pointers


def golden_cases(rev: str | None, path: Path) -> int | None:
    """How many cases a golden set holds, now or at a revision (read through DVC: cache, else remote)."""
    if rev is None:
        text = path.read_text(encoding="utf-8") if path.exists() else None
    else:
        import dvc.api

        try:
            text = dvc.api.read(str(path), rev=rev, mode="r", encoding="utf-8")
        except Exception:  # not at that revision, or its bytes out of reach: nothing to count
            text = None
    return None if text is None else sum(1 for line in text.splitlines() if line.strip())


def procedure_changes(base: str, base_params: dict[str, Any], head_params: dict[str, Any]) -> list[str]:
    """What this change changes of how it is measured; each a line for the report."""
    changes = []
    old, new = flatten(base_params), flatten(head_params)
    for key in (*SPLIT, *SCORING):
        if old.get(key) != new.get(key):
            changes.append(f"`{key}` {old.get(key)!r} → {new.get(key)!r}")
    for key in sorted(k for k in set(old) | set(new) if k.startswith("paths.") and old.get(k) != new.get(k)):
        changes.append(f"`{key}` {old.get(key)!r} → {new.get(key)!r}")
    base_stages = stage_definitions(committed(base, "dvc.yaml"))
    head_stages = stage_definitions(Path("dvc.yaml").read_text(encoding="utf-8") if Path("dvc.yaml").exists() else None)
    changes += [f"stage `{s}` of dvc.yaml" for s in sorted(set(base_stages) | set(head_stages))
                if base_stages.get(s) != head_stages.get(s)]  # fmt: skip
    code = sorted(stage_code(base_stages) | stage_code(head_stages))
    if code:
        changed_code = git("diff", "--name-only", base, "--", *code, check=False).splitlines()
        changes += [f"`{path}` (code of a stage that measures)" for path in changed_code]
    before, after = dvc_pointers(base), dvc_pointers("HEAD")
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            what = "golden set" if "golden" in path else "data"
            changes.append(f"{what} `{path.removesuffix('.dvc')}`" + (" (new)" if path not in before else ""))
    return changes


def golden_failures(base: str, base_params: dict[str, Any], head_params: dict[str, Any]) -> list[str]:
    """A golden set with fewer cases than the base's fails: cutting cases is no way to pass."""
    failures = []
    folder = (base_params.get("paths") or {}).get("golden")
    for name in (base_params.get("prompts") or {}).get("names", []) if folder else []:
        path = Path(folder) / f"{name}.jsonl"
        then, now = golden_cases(base, path), golden_cases(None, path)
        if then is not None and (now or 0) < then:
            failures.append(f"golden set `{path}` has {now or 0} cases, the base's {then}: fewer cases fail")
    return failures


class Worktree:
    """The base revision checked out beside the project, sharing its DVC cache and remotes."""

    def __init__(self, base: str, root: Path) -> None:
        self.root = root
        self.dir = Path(tempfile.mkdtemp(prefix="lockstep-base-")) / "base"
        git("-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "-q", str(self.dir), base)  # no hooks
        src = self.dir / "src"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
        self.env.pop("DVC_ROOT", None)
        # The language model's answers: the base's recorded ones (base_answers) are reused, any other
        # is asked of the model, whatever mode the change's CI or conf/llm sets
        self.env[LLM_CACHE_ENV] = "record"
        self.run(dvc(), "config", "--local", "cache.dir", str(root / ".dvc" / "cache"))
        # DVC wraps its output at the terminal's width (80 columns without one): a long path would
        # be cut into two lines, so the width is unlimited here
        listed = subprocess.run([dvc(), "remote", "list"], capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "100000"})  # fmt: skip
        for line in listed.stdout.splitlines():
            fields = line.split()  # "<name> <url> [(default)]"
            if len(fields) >= 2:  # the URL as resolved from the project: a relative path means the same directory
                self.run(dvc(), "remote", "modify", "--local", fields[0], "url", fields[1])

    def run(self, *cmd: str) -> str:
        done = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip() or done.stdout.strip() or "failed").splitlines()[-1]
            raise StageError(f"the base's evaluation: `{' '.join(Path(c).name if '/' in c else c for c in cmd)}`"
                             f" failed: {one_line(last)}")  # fmt: skip
        return done.stdout

    def close(self) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.dir)], capture_output=True)
        shutil.rmtree(self.dir.parent, ignore_errors=True)


def measure(base: str, base_params: dict[str, Any], head_params: dict[str, Any]) -> Evaluation:
    """This change's model and prompts measured by the base's procedure, in a worktree of the base."""
    root = Path.cwd().resolve()
    result = Evaluation()
    result.changes = procedure_changes(base, base_params, head_params)
    result.failures = golden_failures(base, base_params, head_params)
    base_paths, head_paths = base_params.get("paths") or {}, head_params.get("paths") or {}
    if not base_paths.get("model") or not (root / str(head_paths.get("model"))).exists():
        return result  # no model to measure (yet): the gate falls back to this change's own figures
    tree = Worktree(base, root)
    try:
        # The subject is this change's: its model, its prompts and the language model answering them
        params = dict(base_params)
        if "llm" in head_params:
            params["llm"] = head_params["llm"]
        (tree.dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        lockstep = str(Path(sys.executable).with_name("lockstep"))
        restore = subprocess.run([lockstep, "samples", "restore"], cwd=tree.dir, env=tree.env, capture_output=True)
        if restore.returncode:  # not only bundled samples: the base's data from the cache, else the remote
            pointers = [str(p.relative_to(tree.dir)) for p in tree.dir.rglob("*.dvc") if p.is_file()]
            tree.run(dvc(), "pull", "-q", "--allow-missing", *pointers)
        tree.run(dvc(), "repro", "-q", "--force", "--single-item", "prepare")  # the base's split
        model = tree.dir / base_paths["model"]
        model.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / head_paths["model"], model)
        tree.run(dvc(), "repro", "-q", "--force", "--single-item", "evaluate")
        test = tree.dir / base_paths.get("prepared", "data/prepared") / "test.parquet"
        result.inputs["test_split_md5"] = file_md5(test) if test.is_file() else None
        metrics = tree.dir / base_paths["metrics"]
        result.values |= {f"{base_paths['metrics']}:{k}": v for k, v in flatten(read(metrics)).items()}
        result.cases |= case_files(tree.dir, base_paths.get("plots"), "*.csv")
        for name in (base_params.get("prompts") or {}).get("names", []):
            result.values |= prompt(tree, root, name, base_paths, head_paths, result)
    finally:
        tree.close()
    return result


def prompt(tree: Worktree, root: Path, name: str, base_paths: dict, head_paths: dict, result: Evaluation) -> dict:
    """One prompt of this change scored on the base's golden set with the base's scorers."""
    mine = root / str(head_paths.get("prompts")) / f"{name}.yaml"
    if not mine.exists():
        return {}  # removed by this change: its metrics are missing, and every rule naming them fails
    shutil.copyfile(mine, tree.dir / base_paths["prompts"] / f"{name}.yaml")
    golden = tree.dir / base_paths["golden"] / f"{name}.jsonl"
    result.inputs.setdefault("golden_md5", {})[name] = file_md5(golden) if golden.is_file() else None
    # Answered here by this change's prompt and language model, replaying only the base's recorded
    # answers: never the change's answers file nor its cache entries, which it could have written
    base_answers(tree, name, base_paths)
    tree.run(dvc(), "repro", "-q", "--force", "--single-item", f"prompt_outputs@{name}")
    tree.run(dvc(), "repro", "-q", "--force", "--single-item", f"prompt_evaluate@{name}")
    folder = f"{base_paths['prompt_reports']}/{name}/metrics.json"
    result.cases |= case_files(tree.dir, f"{base_paths['prompt_reports']}/{name}", "cases.csv")
    return {f"{folder}:{k}": v for k, v in flatten(read(tree.dir / folder)).items()}


def base_answers(tree: Worktree, name: str, base_paths: dict) -> None:
    """The base's recorded answers of one prompt (the entries its dvc.lock names, merged and reviewed)
    into the worktree, from the shared DVC cache or else the remote: the only entries the base's
    evaluation may replay. None at the base (or out of reach): every case is asked of the model."""
    folder = base_paths.get("llm_cache")
    if not folder:
        return
    target = f"{folder}/{name}"
    shutil.rmtree(tree.dir / target, ignore_errors=True)
    for command in ("checkout", "pull"):
        done = subprocess.run([dvc(), command, "-q", target], cwd=tree.dir, env=tree.env, capture_output=True)
        if done.returncode == 0:
            return


def case_files(tree: Path, folder: str | None, pattern: str) -> dict[str, str]:
    """The per-case files the base's evaluation wrote in a folder, by their path in the project: the
    gate pairs them with the base's own, case by case."""
    if not folder:
        return {}
    return {(Path(folder) / f.name).as_posix(): f.read_text(encoding="utf-8") for f in (tree / folder).glob(pattern)}


def read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        raise StageError(f"the base's evaluation wrote no readable {path.name}") from None
