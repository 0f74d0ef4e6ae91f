"""A project's hooks (conf/deploy hooks): declared in lockstep.hooks, checked once at start-up with one
line that names conf/deploy, never mistaken for a function of another shape."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lockstep.config import StageError, load_params
from lockstep.hooks import load_hooks

from .conftest import TEMPLATE


def project_module(monkeypatch: pytest.MonkeyPatch, name: str, **functions: object) -> str:
    module = types.ModuleType(name)
    for key, value in functions.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return name


def test_hooks_of_the_declared_shape_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    def prepare_rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=["y"])

    def answer(prompt: object, variables: dict, llm: object) -> object:
        return "reply"

    hooks = load_hooks(project_module(monkeypatch, "good_hooks", prepare_rows=prepare_rows, answer=answer))
    assert hooks.prepare_rows is prepare_rows and hooks.answer is answer
    only = load_hooks(project_module(monkeypatch, "only_rows", prepare_rows=prepare_rows))
    assert only.prepare_rows is prepare_rows and only.answer is None
    assert load_hooks(None).prepare_rows is None and load_hooks(None).answer is None


def test_a_command_line_function_of_the_same_name_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shape of the baked app.py's `answer` command, which the service once called with a Prompt
    def answer(name: str, variables: dict, alias: str) -> tuple[str, str]:
        return name, alias

    name = project_module(monkeypatch, "old_app", answer=answer)
    with pytest.raises(StageError) as err:
        load_hooks(name)
    message = str(err.value)
    assert message.startswith("conf/deploy hooks: old_app.answer(name, variables, alias) is not the hook")
    assert "answer(prompt, variables, llm)" in message and "\n" not in message


def test_a_hook_that_is_not_a_function_or_a_module_that_is_missing_fails_in_one_line(monkeypatch) -> None:
    with pytest.raises(StageError, match=r"^conf/deploy hooks: not_callable\.prepare_rows is not a function"):
        load_hooks(project_module(monkeypatch, "not_callable", prepare_rows=3))
    with pytest.raises(StageError, match=r"^conf/deploy hooks: cannot import no_such_hooks_module \(No module"):
        load_hooks("no_such_hooks_module")


def test_the_baked_projects_conf_names_its_hooks_module_and_the_old_key_is_explained(tmp_path: Path) -> None:
    text = (TEMPLATE / "conf" / "deploy" / "default.yaml").read_text(encoding="utf-8")
    conf = yaml.safe_load(text.replace("{{ cookiecutter.package_name }}", "support_insights"))
    assert conf["hooks"] == "support_insights.hooks" and "app" not in conf
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"deploy": {"app": "support_insights.app"}}))
    with pytest.raises(StageError, match=r"deploy: app was renamed hooks: write `hooks: <package>.hooks`"):
        load_params(path)


def test_the_baked_hooks_module_passes_the_check_and_prepares_rows(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from lockstep.hooks import check

    source = TEMPLATE / "src" / "{{cookiecutter.package_name}}" / "hooks.py"
    assert "{{" not in source.read_text(encoding="utf-8")  # imported as it is baked
    spec = importlib.util.spec_from_file_location("baked_hooks", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hooks = check(module, "support_insights.hooks")
    assert hooks.prepare_rows is module.prepare_rows and hooks.answer is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"data": {"path": "x.csv", "target": "y", "task": "regression", "test_size": 0.2, "seed": 1}})
    )
    prepared = hooks.prepare_rows(pd.DataFrame({"f1": [1.0], "y": [2.0]}))
    assert list(prepared.columns) == ["f1"]
