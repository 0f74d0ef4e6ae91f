"""Prompts as reviewed files: their schema, the golden sets, rendering, and loading by alias.

A prompt lives in prompts/<name>.yaml (see the shipped ones), its golden set in
data/golden/<name>.jsonl. This command validates every prompt and golden set named in
params.yaml; each problem is one line naming the file, the field and what was expected:

    lockstep prompts check
 Templates use MLflow's double-brace variables, so the same
text renders here and from the MLflow Prompt Registry.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockstep.config import Params, StageError, tracking_uri
from lockstep.tracking import fail_fast

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")  # MLflow's prompt variable syntax


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ModelSettings(_Strict):
    model: str | None = None  # None: the model of conf/llm
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=256, gt=0)
    seed: int | None = 42


class Prompt(_Strict):
    """One prompt file: the text under review and the settings it is evaluated with."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    template: str | list[Message]
    input_variables: list[str]
    model_settings: ModelSettings = ModelSettings()
    response_format: dict[str, Any] | None = None

    def texts(self) -> list[str]:
        return [self.template] if isinstance(self.template, str) else [m.content for m in self.template]

    def used_variables(self) -> set[str]:
        return {v for text in self.texts() for v in VARIABLE.findall(text)}

    def template_for_registry(self) -> str | list[dict[str, str]]:
        return self.template if isinstance(self.template, str) else [m.model_dump() for m in self.template]

    def content_hash(self) -> str:
        """Hash of everything that changes the model's answers: template, settings, format."""
        payload = self.model_dump(mode="json", exclude={"description"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """Chat messages with every double-brace variable filled in, as MLflow's PromptVersion.format does."""
        missing = self.used_variables() - set(variables)
        if missing:
            raise StageError(f"prompt {self.name}: no value for variable(s) {', '.join(sorted(missing))}")

        def fill(text: str) -> str:
            return VARIABLE.sub(lambda m: str(variables[m.group(1)]), text)

        if isinstance(self.template, str):
            return [{"role": "user", "content": fill(self.template)}]
        return [{"role": m.role, "content": fill(m.content)} for m in self.template]


def _first_error(path: Path, exc: ValidationError) -> StageError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(file)"
    if err["type"] == "extra_forbidden":
        owner = {"model_settings": ModelSettings, "template": Message}.get(str(err["loc"][0]), Prompt)
        allowed = ", ".join(owner.model_fields if len(err["loc"]) > 1 else Prompt.model_fields)
        return StageError(f"{path}: {field}: unknown key; allowed keys are {allowed}")
    return StageError(f"{path}: {field}: {err['msg']}")


def load_prompt_file(path: Path) -> Prompt:
    """Read and validate one prompt file; its variables must match the template exactly."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; add the prompt file or remove it from conf/prompts names") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise StageError(f"{path}: not valid YAML{f' (line {mark.line + 1})' if mark else ''}") from None
    try:
        prompt = Prompt.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    if prompt.name != path.stem:
        raise StageError(f"{path}: name: '{prompt.name}' must match the file name '{path.stem}'")
    used, declared = prompt.used_variables(), set(prompt.input_variables)
    if undeclared := sorted(used - declared):
        raise StageError(f"{path}: template: variable '{undeclared[0]}' is not declared; add it to input_variables")
    if unused := sorted(declared - used):
        raise StageError(f"{path}: input_variables: '{unused[0]}' is declared but the template never uses it")
    return prompt


def load_golden(path: Path, prompt: Prompt) -> list[dict[str, Any]]:
    """Read a golden set; every case needs an id, a value for each variable and an expected answer."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run `dvc pull` or add a golden set for prompt {prompt.name}") from None
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        for key in ("id", "inputs", "expected"):
            if key not in case:
                raise StageError(f"{path}:{number}: missing '{key}'")
        missing = [v for v in prompt.input_variables if v not in case["inputs"]]
        if missing:
            raise StageError(
                f"{path}:{number}: inputs: missing variable(s) {', '.join(missing)} of prompt {prompt.name}"
            )
        cases.append(case)
    if not cases:
        raise StageError(f"{path}: has no cases; add at least one line")
    return cases


def check(params: Params) -> list[str]:
    """Validate every prompt and golden set named in params.yaml; returns the problems found."""
    names, paths = params.need("prompts").names, params.need("paths")
    problems = []
    for name in names:
        try:
            prompt = load_prompt_file(paths.prompt_file(name))
            if paths.golden_file(name).exists():
                load_golden(paths.golden_file(name), prompt)
        except StageError as exc:
            problems.append(str(exc))
    listed = {paths.prompt_file(n) for n in names}
    problems += [
        f"{p}: not listed in conf/prompts names; add '{p.stem}' there or delete the file"
        for p in sorted(paths.prompts.glob("*.yaml"))
        if p not in listed
    ]
    return problems


def load_prompt(
    name: str, alias: str, prompts_dir: Path = Path("prompts"), registry_prefix: str = ""
) -> tuple[Prompt, str]:
    """The prompt the application should use: `prompts:/<prefix>name@alias` from the MLflow Prompt
    Registry, or the reviewed file in Git when no registry is reachable or it has no such alias.

    Returns the prompt and where it came from (the registry URI or the file path).
    """
    local = load_prompt_file(prompts_dir / f"{name}.yaml")
    fail_fast()  # the registry commands' bounded retries, not MLflow's minutes of backoff
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    uri = f"prompts:/{registry_prefix}{name}@{alias}"
    try:
        version = mlflow.genai.load_prompt(uri)
    except Exception:  # unreachable server, no database, unknown alias: all mean "use the file"
        return local, str(prompts_dir / f"{name}.yaml")
    settings = dict(version.model_config or {})
    template = version.template
    messages = template if isinstance(template, str) else [Message(**m) for m in template]
    prompt = local.model_copy(
        update={"template": messages, "model_settings": ModelSettings(**settings) if settings else local.model_settings}
    )
    return prompt, uri


def registered_version(name: str, content_hash: str) -> int | None:
    """The newest version of a registered prompt whose content has this hash, if any."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client, token = mlflow.MlflowClient(), None
    while True:
        try:
            page = client.search_prompt_versions(name, page_token=token)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None  # not registered yet
            raise
        found = [int(v.version) for v in page if v.tags.get("content_hash") == content_hash]
        if found:
            return max(found)
        token = page.token
        if not token:
            return None


def register_prompt(prompt: Prompt, alias: str | None, tags: dict[str, str], registry_name: str | None = None) -> int:
    """Register a prompt in the MLflow Prompt Registry (as registry_name, by default its own name)
    unless a version already has this content (a prompt edited back to what it was gets its old
    version again, as a model's bytes do), point the alias (if any) at that version through
    lockstep.aliases, and return its number."""
    import mlflow

    name = registry_name or prompt.name
    content_hash = prompt.content_hash()
    version = registered_version(name, content_hash)
    if version is None:
        settings = prompt.model_settings.model_dump(exclude_none=True)
        created = mlflow.genai.register_prompt(
            name=name,
            template=prompt.template_for_registry(),
            commit_message=prompt.description,
            tags={**tags, "content_hash": content_hash},
            response_format=prompt.response_format,
            model_config=settings,
        )
        version = created.version
    if alias is not None:
        from lockstep import aliases

        aliases.move_prompt(name, alias, int(version), "registered", commit=tags.get("git_commit"))
    return int(version)
