"""Typed, validated view of params.yaml, and the small command-line frame every stage shares.

params.yaml is composed from conf/ by DVC (`make params`). Each stage validates the sections
it reads once, at start-up, so a bad value fails with the file, the key and what was expected.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any{% if cookiecutter.include_llm == "yes" %}, Literal{% endif %}

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError{% if cookiecutter.include_llm == "yes" %}, model_validator{% endif %}

PARAMS_FILE = Path("params.yaml")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow tracking and registry, at the project root


class StageError(Exception):
    """A stage cannot go on: the message names what is wrong (file, key or metric) and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """conf/data: which CSV to learn from and how to split it."""

    path: Path
    target: str
    positive_class: str
    features: list[str] | None = None
    test_size: float = Field(gt=0, lt=1)
    seed: int


class ModelConfig(_Section):
    """conf/model: a scikit-learn classifier given by import path, and its arguments."""

    name: str
    estimator: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    scale: bool = False
    params: dict[str, Any] = Field(default_factory=dict)


class EvaluateConfig(_Section):
    """conf/evaluate: the lowest value each metric may take before the stage fails."""

    floors: dict[str, float] = Field(default_factory=dict)


class PathsConfig(_Section):
    """Every file the pipeline writes, declared once and used by dvc.yaml too."""

    prepared: Path
    model: Path
    metrics: Path
    plots: Path
    registration: Path
{%- if cookiecutter.include_llm == "yes" %}
    prompts: Path
    golden: Path
    prompt_outputs: Path
    prompt_reports: Path
{%- endif %}

    @property
    def train(self) -> Path:
        return self.prepared / "train.csv"

    @property
    def test(self) -> Path:
        return self.prepared / "test.csv"
{%- if cookiecutter.include_llm == "yes" %}

    def prompt_file(self, name: str) -> Path:
        return self.prompts / f"{name}.yaml"

    def golden_file(self, name: str) -> Path:
        return self.golden / f"{name}.jsonl"

    def prompt_output(self, name: str) -> Path:
        return self.prompt_outputs / f"{name}.jsonl"

    def prompt_report(self, name: str) -> Path:
        return self.prompt_reports / name
{%- endif %}


class RegisterConfig(_Section):
    """Where the register stage puts the model in the MLflow registry."""

    model_name: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    alias: str = Field(pattern=r"^[A-Za-z_][\w-]*$")


{%- if cookiecutter.include_llm == "yes" %}


class LLMConfig(_Section):
    """conf/llm: the language model that answers the prompts, and what its tokens cost."""

    backend: Literal["llama_cpp", "openai"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    context_size: int = Field(default=2048, gt=0)
    threads: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=0, ge=0)
    schema_style: Literal["json_schema", "json_object"] = "json_schema"
    price_per_1k_input_tokens: float = Field(default=0.0, ge=0)
    price_per_1k_output_tokens: float = Field(default=0.0, ge=0)


class PromptsConfig(_Section):
    """conf/prompts: which prompts are evaluated and registered, and the gates on their metrics."""

    names: list[str] = Field(min_length=1)
    alias: str = Field(pattern=r"^[A-Za-z_][\w-]*$")
    floors: dict[str, dict[str, float]] = Field(default_factory=dict)  # per prompt
    ceilings: dict[str, float] = Field(default_factory=dict)  # every prompt
    banned_phrases: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _floors_name_prompts(self) -> PromptsConfig:
        unknown = sorted(set(self.floors) - set(self.names))
        if unknown:
            raise ValueError(f"floors name prompt(s) not in names: {', '.join(unknown)}")
        return self
{%- endif %}


SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "evaluate": EvaluateConfig,
    "paths": PathsConfig,
    "register": RegisterConfig,
{%- if cookiecutter.include_llm == "yes" %}
    "llm": LLMConfig,
    "prompts": PromptsConfig,
{%- endif %}
}


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a tracking server, a database), else the local SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml as a mapping, with an actionable error when it is missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StageError(f"{path}: not found; compose it from conf/ with `make params`") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise StageError(f"{path}: not valid YAML{where}; recompose it with `make params`") from None
    if not isinstance(params, dict):
        raise StageError(f"{path}: expected a mapping of sections; recompose it with `make params`")
    return params


def section(params: dict[str, Any], name: str, kind: type[_Section], source: Path = PARAMS_FILE) -> Any:
    """Validate one section of params into its typed config, naming the first bad key."""
    if name not in params:
        raise StageError(f"{source}: section '{name}' is missing; add it under conf/ and run `make params`")
    try:
        return kind.model_validate(params[name])
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join([name, *(str(p) for p in err["loc"])])
        shown = repr(err.get("input"))
        got = f" (got {shown})" if "input" in err and err["type"] != "missing" and len(shown) <= 80 else ""
        raise StageError(f"{source}: {key}: {err['msg']}{got}; fix it in conf/{name} and run `make params`") from None


def load(*names: str, path: Path = PARAMS_FILE) -> tuple[Any, ...]:
    """Read params.yaml once and return the typed sections a stage asks for, in order."""
    params = read_params(path)
    return tuple(section(params, name, SECTIONS[name], path) for name in names)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys, as DVC names params and metrics."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def one_line(text: Any, limit: int = 200) -> str:
    """Text from another tool, squeezed onto one line of at most `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file whole or not at all, so an interrupted stage never leaves half an output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def run_stage(
    stage: str,
    description: str,
    body: Callable[[argparse.Namespace], None],
    argv: list[str] | None,
    arguments: Callable[[argparse.ArgumentParser], object] | None = None,
) -> int:
    """Parse the shared arguments (and a stage's own), run its body, report StageError in one line."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.stages.{stage}", description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="composed parameters file")
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    try:
        body(args)
    except StageError as exc:
        print(f"error: {stage}: {exc}", file=sys.stderr)
        return 1
    return 0
