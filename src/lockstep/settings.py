"""The typed settings no pipeline stage reads: conf/gates, conf/policy, conf/deploy and conf/monitor.

`lockstep params` composes them from conf/settings.yaml into settings.yaml, apart from the
pipeline's params.yaml (DVC tracks only what stages read); lockstep.config validates both files
into one `Params`. This module imports nothing from the rest of the toolkit (lockstep.config
builds on it).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Task = Literal["binary", "multiclass", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Strict):
    """conf/policy: the settings the promotion policies read (as input.policy); the rules are Rego."""

    data_sources: list[str] = Field(default_factory=lambda: ["data/**"])  # globs of allowed data paths
    latency_sla_ms: float | None = Field(default=None, gt=0)  # p95 above it: a human decides
    max_cost_usd_per_case: float | None = Field(default=None, ge=0)  # above it: never promoted
    approval_required_for: list[Literal["gate_rules", "prompt_safety"]] = Field(
        default_factory=lambda: ["gate_rules", "prompt_safety"]
    )
    review_on_gate_failure: list[str] = Field(default_factory=list)  # metric globs a human may trade off
    safety_metrics: list[str] = Field(
        default_factory=lambda: ["pii_leak_rate", "injection_failure_rate", "banned_rate"]
    )
    project: dict[str, Any] = Field(default_factory=dict)  # free settings for the project's own rules


class Rule(_Strict):
    """One rule of conf/gates: a metric (glob), which way is better, its limits."""

    metric: str = Field(pattern=r"^[^:]+:.+$")  # "<metrics file>:<key>", globs allowed
    direction: Literal["higher", "lower"]
    min: float | None = None
    max: float | None = None
    max_regression: float | None = Field(default=None, ge=0)
    max_regression_pct: float | None = Field(default=None, ge=0)
    min_effect: float | None = Field(default=None, gt=0)  # the regression the golden set should be able to catch
    on_unreadable: Literal["fail", "pass"] = "fail"
    tasks: list[Task] | None = None  # applies only when data.task is one of these; None: every task

    @model_validator(mode="after")
    def _effect_beyond_the_allowance(self) -> Rule:
        if self.min_effect is not None and self.max_regression is not None and self.min_effect <= self.max_regression:
            raise ValueError(
                f"min_effect {self.min_effect:g} must be larger than max_regression {self.max_regression:g}:"
                " a regression the rule allows can never fail it"
            )
        return self

    @property
    def compares(self) -> bool:
        return self.max_regression is not None or self.max_regression_pct is not None

    def allowed(self, base: float) -> float:
        """The allowed regression against a base value, in the metric's unit: the stricter limit."""
        limits = [self.max_regression] if self.max_regression is not None else []
        limits += [self.max_regression_pct / 100 * abs(base)] if self.max_regression_pct is not None else []
        return min(limits)

    def applies_to(self, task: str | None) -> bool:
        return self.tasks is None or task is None or task in self.tasks

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.metric)

    def describe(self) -> str:
        parts = [f"{self.direction} is better"]
        parts += [f"min {self.min:g}"] if self.min is not None else []
        parts += [f"max {self.max:g}"] if self.max is not None else []
        worse = "drop" if self.direction == "higher" else "rise"
        parts += [f"{worse} ≤ {self.max_regression:g}"] if self.max_regression is not None else []
        parts += [f"{worse} ≤ {self.max_regression_pct:g}%"] if self.max_regression_pct is not None else []
        parts += [f"min effect {self.min_effect:g}"] if self.min_effect is not None else []
        return ", ".join(parts)


class GatesConfig(_Strict):
    """conf/gates: the rules the CI gate applies to the metrics."""

    rules: list[Rule] = Field(min_length=1)


class Thresholds(_Strict):
    """What a canary window must show, compared with the SLA and with stable."""

    min_samples: int = Field(default=50, gt=0)  # fewer requests on either arm: inconclusive, hold
    sla_p95_ms: float = Field(default=500.0, gt=0)  # canary p95 above this: rollback at once
    max_p95_ratio: float = Field(default=1.5, gt=0)  # canary p95 / stable p95 ...
    p95_slack_ms: float = Field(default=20.0, ge=0)  # ... ignored while the difference is below this
    max_error_rate_increase: float = Field(default=0.01, ge=0)  # canary minus stable, as a share
    max_error_rate: float = Field(default=0.2, ge=0)  # canary error rate above this: rollback at once
    max_quality_failure_increase: float = Field(default=0.02, ge=0)  # empty, invalid, schema, PII


class Resources(_Strict):
    """A pod's CPU and memory, as Kubernetes writes them."""

    cpu: str = "500m"
    memory: str = "1Gi"


class KubernetesConfig(_Strict):
    """What `lockstep deploy manifests` needs beyond the canary's settings: names, sizes, Prometheus."""

    name: str | None = Field(default=None, pattern=r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")  # else the model's name
    replicas: int = Field(default=2, gt=0)  # Argo splits traffic by replica count without a traffic router
    port: int = Field(default=8000, gt=0, lt=65536)
    prometheus: str = "http://prometheus-operated.monitoring.svc:9090"  # what the AnalysisTemplate queries
    secret: str | None = None  # a Secret given to the pods as environment (MLFLOW_TRACKING_URI, LLM key)
    requests: Resources = Resources(cpu="250m", memory="512Mi")
    limits: Resources = Resources(cpu="1", memory="1Gi")


class DeployConfig(_Strict):
    """conf/deploy: the lock file, the canary's steps and windows, and its thresholds."""

    lock_file: Path = Path("deploy.lock.json")
    decisions: Path = Path("deploy/decisions.jsonl")
    stable_alias: str = "champion"
    canary_alias: str = "challenger"
    steps: list[float] = Field(default_factory=lambda: [10.0, 25.0, 50.0, 100.0], min_length=1)
    window_s: float = Field(default=3600.0, gt=0)
    rehearsal_window_s: float = Field(default=5.0, gt=0)  # make canary-rehearsal's windows
    failure_limit: int = Field(default=2, gt=0)  # failed windows before rollback
    max_windows: int = Field(default=100, gt=0)  # inconclusive windows included: then roll back
    shadow: bool = False  # mirror stable's requests to the canary and discard its answers
    max_body_bytes: int = Field(default=1_000_000, gt=0)  # a larger request body is refused: HTTP 413
    max_rows: int = Field(default=1000, gt=0)  # rows per predict request; more: HTTP 413
    api_docs: bool = False  # serve /docs and /openapi.json (off: they describe the service to anyone)
    access_log: bool = True  # one line per request on stderr: method, path, status, variant, milliseconds
    thresholds: Thresholds = Thresholds()
    # The project's hooks module (lockstep.hooks.ProjectHooks: prepare_rows, answer), e.g. <package>.hooks
    hooks: str | None = Field(default=None, pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
    kubernetes: KubernetesConfig = KubernetesConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "app" in data:
            raise ValueError("app was renamed hooks: write `hooks: <package>.hooks` (the module of your hooks)")
        return data


class DriftThresholds(_Strict):
    """When a feature, the predictions and the dataset count as drifted (Evidently's defaults)."""

    small_reference: int = Field(default=1000, gt=0)  # reference rows <= this: K-S and chi-square
    ks_p_value: float = Field(default=0.05, gt=0, lt=1)  # numeric, small reference: drift when p < this
    chi2_p_value: float = Field(default=0.05, gt=0, lt=1)  # categorical, small reference
    wasserstein: float = Field(default=0.1, gt=0)  # numeric, large reference: normed distance >= this
    jensen_shannon: float = Field(default=0.1, gt=0)  # categorical, large reference
    psi: float = Field(default=0.2, gt=0)  # predictions: population stability index >= this ...
    psi_p_value: float = Field(default=0.01, gt=0, lt=1)  # ... and sampling alone reaches it less often than this
    drift_share: float = Field(default=0.5, gt=0, le=1)  # dataset drift: drifted features' share >= this
    # What the model uses (its permutation importance, lockstep.importance): the drifted features'
    # share of it >= this, or one of the top_k features drifted with an effect >= top_effect
    weighted_drift_share: float = Field(default=0.75, gt=0, le=1)
    top_k: int = Field(default=3, ge=0)
    top_effect: float = Field(default=0.5, gt=0)  # normed Wasserstein (reference sds) or Jensen-Shannon distance
    # A p-value alone flags trivial shifts in large windows: a drifted feature also moved this much
    min_effect: float = Field(default=0.1, ge=0)  # numeric: normed Wasserstein distance, in reference sds
    min_effect_categorical: float = Field(default=0.05, ge=0)  # categorical: Jensen-Shannon distance
    categorical_max_unique: int = Field(default=5, ge=1)  # numeric columns with at most this many values


class PromptThresholds(_Strict):
    """A prompt's answers in the latest window against its golden-set baseline (reports/prompts)."""

    min_answers: int = Field(default=20, gt=0)  # fewer logged answers of a prompt: not judged
    max_length_change: float = Field(default=0.5, ge=0)  # mean answer words vs the golden outputs', relative
    max_refusal_increase: float = Field(default=0.05, ge=0)  # share of answers that refuse, minus the baseline's
    max_schema_failure_increase: float = Field(default=0.05, ge=0)  # empty, invalid or schema-failing answers
    max_pii_increase: float = Field(default=0.0, ge=0)  # answers with PII, minus the golden set's pii_leak_rate


class QualityConfig(_Strict):
    """Delayed labels: the true outcome of logged predictions, sent later, joined by request id."""

    labels: Path | None = None  # a CSV or JSONL file, or a directory of them (request_id,label[,row]); None: off
    metric: Literal["accuracy", "mae", "rmse"] | None = None  # None: accuracy (classification), rmse (regression)
    min_labels: int = Field(default=50, gt=0)  # fewer labelled rows in a window: too few labels to judge
    max_drop: float = Field(default=0.05, ge=0)  # worse than the version's offline metric by more: breach


class MonitorConfig(_Strict):
    """conf/monitor: what the service logs, and how `lockstep monitor` judges the windows."""

    log: str = "monitor/inference.db"  # SQLite file, or postgresql://user@host:port/db (no password)
    log_url_env: str = "LOCKSTEP_MONITOR_LOG"  # a variable that, when set, names the log instead (a secret)
    sample_rate: float = Field(default=1.0, ge=0, le=1)  # share of requests logged (0: off)
    fields: list[str] | None = None  # the input fields stored (an allow-list); None: all. The rest never stored
    redact: dict[str, str] | None = None  # kind -> regular expression, replaced by [PII:kind]; None: lockstep.pii's
    retention_days: float | None = Field(default=90, gt=0)  # records older than this are deleted; None: kept
    retention_rows: int | None = Field(default=None, gt=0)  # at most this many records kept; None: no limit
    queue_size: int = Field(default=10000, gt=0)  # records waiting for the writer; beyond: dropped, counted
    reference: Path = Path("data/prepared/train.parquet")  # the training data, as prepared
    target: str | None = None  # the label column of the reference (left out of the comparison)
    out: Path = Path("reports/monitor")  # metrics.json, report.html, history.jsonl, retrain.json
    window_s: float = Field(default=86400.0, gt=0)  # one monitoring window
    min_rows: int = Field(default=100, gt=0)  # fewer logged rows in a window: not judged
    breaches_n: int = Field(default=2, gt=0)  # retrain when at least N ...
    windows_m: int = Field(default=5, gt=0)  # ... of the last M windows breach, the latest included
    drift: DriftThresholds = DriftThresholds()
    prompts: PromptThresholds = PromptThresholds()
    quality: QualityConfig = QualityConfig()

    @field_validator("redact")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        import re

        for kind, pattern in (value or {}).items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact.{kind}: not a regular expression ({exc})") from None
        return value

    @field_validator("log")
    @classmethod
    def _no_password(cls, value: str) -> str:
        from urllib.parse import urlsplit

        if "://" in value and urlsplit(value).password is not None:
            raise ValueError(
                "a password in the log's URL would be committed: leave it out and set PGPASSWORD"
                " (or ~/.pgpass), or give the whole URL in the variable named by log_url_env"
            )
        return value

    @property
    def store(self) -> str:
        """Where the log is: $<log_url_env> when set, else `log` (a SQLite file or a PostgreSQL URL)."""
        return os.environ.get(self.log_url_env) or self.log
