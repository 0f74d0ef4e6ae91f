"""conf/deploy: the lock file, the canary's steps and windows, and its thresholds."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lockstep.config import read_params, section


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    thresholds: Thresholds = Thresholds()
    app: str | None = None  # the project's module with optional prepare_rows / answer hooks
    kubernetes: KubernetesConfig = KubernetesConfig()


def deploy_config(params_file: Path) -> DeployConfig:
    """conf/deploy from params.yaml; its defaults when the project has no deploy section."""
    params = read_params(params_file)
    if "deploy" not in params:
        return DeployConfig()
    return section(params, "deploy", DeployConfig, params_file)
