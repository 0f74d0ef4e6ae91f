"""Typed, validated view of params.yaml and settings.yaml, and the small helpers every command and stage shares.

`lockstep params` composes both from conf/ with DVC's Hydra composer: params.yaml (conf/config.yaml)
holds what the pipeline's stages read, and is what DVC tracks and `dvc exp show` lists;
settings.yaml (conf/settings.yaml) holds what no stage reads: the gate's rules, the policies'
settings, deployment and monitoring. Both are read once, at start-up, into one `Params`: every
section validated, so a bad value fails with the file, the key and what was expected. A missing
section follows its declaration in `Params`: one with defaults (deploy, policy) is its defaults,
any other is None, and a command that cannot do without it asks with `Params.need(name)`, which
fails with the one message that says where to add it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from lockstep import __version__
from lockstep.settings import DeployConfig, GatesConfig, MonitorConfig, PolicyConfig, Task

PARAMS_FILE = Path("params.yaml")
PARAMS_ENV = "LOCKSTEP_PARAMS"  # another composed parameters file, e.g. for a one-off run or a test
SETTINGS_NAME = "settings.yaml"  # composed from conf/settings.yaml, beside the parameters file
SETTINGS_SECTIONS = ("gates", "policy", "deploy", "monitor")  # no stage reads them: not DVC params
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow tracking and registry, at the project root
SCHEDULER = r"threads|processes|synchronous|(tcp|tls|ws|wss)://\S+"  # Dask's local schedulers, or an address


class StageError(Exception):
    """A stage cannot go on: the message names what is wrong (file, key or metric) and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """conf/data: which CSV to learn from, what to predict, and how to split it."""

    path: Path
    target: str
    task: Task = "binary"
    positive_class: str | None = None  # binary only: the class that counts as positive
    features: list[str] | None = None
    test_size: float = Field(gt=0, lt=1)
    seed: int
    # pandas: the whole table in memory. dask: read, checked and split in partitions, out of core
    # (lockstep.tabular_dask; needs lockstep-mlops[dask]); path may then be a directory of files.
    engine: Literal["pandas", "dask"] = "pandas"
    # dask only: Dask's local scheduler (threads, processes, synchronous), or a dask.distributed
    # scheduler's address (tcp://host:8786). DASK_SCHEDULER_ADDRESS, Dask's own variable, wins.
    scheduler: str | None = None

    @model_validator(mode="after")
    def _keys_that_go_together(self) -> DataConfig:
        if self.task == "binary" and not self.positive_class:
            raise ValueError("task binary needs positive_class (the class that counts as positive)")
        if self.task != "binary" and self.positive_class is not None:
            raise ValueError(f"positive_class applies to task binary only; set it to null for task {self.task}")
        if self.engine != "dask" and self.scheduler is not None:
            raise ValueError("scheduler applies to engine dask only; set engine: dask or remove scheduler")
        if self.scheduler is not None and not re.fullmatch(SCHEDULER, self.scheduler):
            raise ValueError(
                "scheduler must be threads, processes, synchronous or a scheduler's address such as tcp://host:8786"
            )
        return self


class ModelConfig(_Section):
    """conf/model: a scikit-learn estimator given by import path, and its arguments."""

    name: str
    estimator: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    scale: bool = False
    params: dict[str, Any] = Field(default_factory=dict)


class PathsConfig(_Section):
    """Every file the pipeline writes, declared once and used by dvc.yaml too."""

    prepared: Path
    model: Path
    metrics: Path
    plots: Path
    registration: Path
    prompts: Path | None = None
    golden: Path | None = None
    prompt_outputs: Path | None = None
    prompt_reports: Path | None = None
    prices: Path = Path("conf/prices.yaml")  # USD per 1k tokens of each hosted model (lockstep.budget)
    llm_cache: Path | None = None  # recorded answers of the language model, a directory per prompt

    @property
    def train(self) -> Path:
        return self.prepared / "train.parquet"

    @property
    def test(self) -> Path:
        return self.prepared / "test.parquet"

    def _prompt_path(self, key: str) -> Path:
        value = getattr(self, key)
        if value is None:
            raise StageError(f"paths.{key} is not set; add it to conf/config.yaml (the prompt track needs it)")
        return value

    def prompt_file(self, name: str) -> Path:
        return self._prompt_path("prompts") / f"{name}.yaml"

    def golden_file(self, name: str) -> Path:
        return self._prompt_path("golden") / f"{name}.jsonl"

    def prompt_output(self, name: str) -> Path:
        return self._prompt_path("prompt_outputs") / f"{name}.jsonl"

    def prompt_report(self, name: str) -> Path:
        return self._prompt_path("prompt_reports") / name

    def llm_cache_dir(self, name: str) -> Path | None:
        return None if self.llm_cache is None else self.llm_cache / name


class RegisterConfig(_Section):
    """Where the register stage puts the model in the MLflow registry."""

    model_name: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    alias: str = Field(pattern=r"^[A-Za-z_][\w-]*$")


class LLMConfig(_Section):
    """conf/llm: the language model that answers the prompts, and the most a run may spend on it."""

    backend: Literal["llama_cpp", "openai"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    context_size: int = Field(default=2048, gt=0)
    threads: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=0, ge=0)
    schema_style: Literal["json_schema", "json_object"] = "json_schema"
    # The most one `prompts answer` run may spend (USD, by the bound of lockstep.budget); None: no limit
    budget_usd: float | None = Field(default=None, gt=0)
    # live, record, replay or refresh (lockstep.llm_cache); the environment's LOCKSTEP_LLM_CACHE overrides it
    cache_mode: Literal["live", "record", "replay", "refresh"] = "record"


class PromptsConfig(_Section):
    """conf/prompts: which prompts are evaluated and registered (their gates live in conf/gates)."""

    names: list[str] = Field(min_length=1)
    alias: str = Field(pattern=r"^[A-Za-z_][\w-]*$")
    # Put before each name in the Prompt Registry, e.g. `support_insights.`: prompt names are
    # global on a tracking server, so projects sharing one keep their prompts apart with it.
    registry_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    banned_phrases: list[str] = Field(default_factory=list)


class Params(BaseModel):
    """params.yaml: every section validated once. A section that is absent is None, or its defaults
    where it declares them; `need()` asks for one a command cannot do without."""

    model_config = ConfigDict(extra="allow", frozen=True)  # a project's own sections: kept, not read

    toolkit_version: str | None = None
    data: DataConfig | None = None
    model: ModelConfig | None = None
    paths: PathsConfig | None = None
    # `register` in params.yaml; BaseModel's metaclass (an ABC's) already has a `register`
    registration: RegisterConfig | None = Field(default=None, alias="register")
    llm: LLMConfig | None = None
    prompts: PromptsConfig | None = None
    # settings.yaml: no stage reads these (a project baked before they moved keeps them in params.yaml)
    policy: PolicyConfig = PolicyConfig()
    gates: GatesConfig | None = None
    deploy: DeployConfig = DeployConfig()
    monitor: MonitorConfig | None = None  # None: the service keeps no inference log
    _source: Path = PrivateAttr(default=PARAMS_FILE)
    _settings: Path | None = PrivateAttr(default=None)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("toolkit_version"), int | float):
            return {**data, "toolkit_version": str(data["toolkit_version"])}  # YAML reads 1.0 as a number
        return data

    @property
    def source(self) -> Path:
        """The file these params were read from."""
        return self._source

    @property
    def settings_source(self) -> Path | None:
        """The settings file read beside the parameters file (None when there is none)."""
        return self._settings

    @property
    def raw(self) -> dict[str, Any]:
        """The parameters file's sections as it holds them (lineage records exactly what was composed)."""
        return self._raw

    def need(self, name: str) -> Any:
        """A section a command cannot do without; a missing one fails with where to add it."""
        field = next((n for n, f in type(self).model_fields.items() if f.alias == name), name)
        value = getattr(self, field, None)
        if value is None:
            where = self._settings if name in SETTINGS_SECTIONS and self._settings else self._source
            raise StageError(f"{where}: section '{name}' is missing; add it under conf/ and run `make params`")
        return value


def project_root() -> Path:
    """The project's root: DVC_ROOT, which DVC sets for every stage (in a queued experiment's
    temporary copy it names the project itself), else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a tracking server, a database), else the SQLite file mlflow.db at
    the project's root: a queued experiment registers in the project's registry, not in its copy's."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = os.environ.get("DVC_ROOT")
    return f"sqlite:///{project_root() / 'mlflow.db'}" if root else DEFAULT_TRACKING_URI


def redact(uri: str) -> str:
    """A URI fit for messages and logs: any password or token in it replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]  # as written: keeps an IPv6 host's brackets and the port
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def params_file() -> Path:
    """The parameters file commands and stages read: $LOCKSTEP_PARAMS when set, else params.yaml."""
    return Path(os.environ.get(PARAMS_ENV) or PARAMS_FILE)


def read_params(path: Path | None = None) -> dict[str, Any]:
    """Read params.yaml as a mapping, with an actionable error when it is missing or malformed."""
    path = path or params_file()
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


def settings_file(params: Path) -> Path:
    """The settings file that goes with a parameters file: settings.yaml beside it."""
    return params.with_name(SETTINGS_NAME)


def load_params(path: Path | None = None) -> Params:
    """params.yaml and settings.yaml beside it, read once and validated whole; a bad value names its
    file, key and conf/ group. A section in both files is an error: each has one source."""
    path = path or params_file()
    raw = read_params(path)
    settings_path = settings_file(path)
    settings = read_params(settings_path) if settings_path.is_file() else None
    if settings is not None:
        unknown = sorted(set(settings) - set(SETTINGS_SECTIONS))
        both = sorted(set(settings) & set(raw))
        if unknown:
            raise StageError(
                f"{settings_path}: section '{unknown[0]}' does not belong here (only {', '.join(SETTINGS_SECTIONS)});"
                " keep the pipeline's parameters in conf/config.yaml and run `make params`"
            )
        if both:
            raise StageError(
                f"{path}: section '{both[0]}' is also in {settings_path}; keep it only in conf/settings.yaml's"
                " defaults and run `make params`"
            )
    try:
        params = Params.model_validate(raw | (settings or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "params"
        key = ".".join(str(p) for p in err["loc"])
        given = err.get("input")
        shown = repr(redact(given) if isinstance(given, str) else given)  # never echo a URL's password
        got = f" (got {shown})" if "input" in err and err["type"] != "missing" and len(shown) <= 80 else ""
        msg = err["msg"].removeprefix("Value error, ")
        where = settings_path if settings and name in settings else path
        raise StageError(f"{where}: {key}: {msg}{got}; fix it in conf/{name} and run `make params`") from None
    params._source, params._raw = path, raw
    params._settings = settings_path if settings is not None else None
    return params


def load(*names: str, path: Path | None = None) -> tuple[Any, ...]:
    """The typed sections a stage asks for, in order, from params.yaml read once."""
    params = load_params(path)
    return tuple(params.need(name) for name in names)


def check_toolkit_version(params: Params) -> None:
    """The toolkit installed must be the one params.yaml pins: DVC re-runs toolkit stages on a bump."""
    pinned = params.toolkit_version
    if pinned is not None and pinned != __version__:
        raise StageError(
            f"{params.source}: toolkit_version {pinned} but lockstep-mlops {__version__} is installed;"
            " pin the same version in pyproject.toml and conf/config.yaml, then `make setup && make params`"
        )


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys, as DVC names params and metrics."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def one_line(text: Any, limit: int = 200) -> str:
    """Text from another tool, squeezed onto one line of at most `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_line(exc: BaseException) -> str:
    """An error's first line, for one-line messages; its type's name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run(stage: Callable[[], object], name: str | None = None) -> int:
    """Run a stage's main(), turning a StageError into one `error: <stage>:` line and exit status 1."""
    try:
        stage()
    except StageError as exc:
        module = stage.__module__
        if module == "__main__":  # run as `python -m <package>.stages.<name>`
            spec = getattr(sys.modules["__main__"], "__spec__", None)
            module = spec.name if spec else Path(sys.argv[0]).stem
        print(f"error: {name or module.rpartition('.')[2]}: {exc}", file=sys.stderr)
        return 1
    return 0
