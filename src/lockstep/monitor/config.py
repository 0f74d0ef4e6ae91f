"""conf/monitor: the inference log's sampling and storage, the drift thresholds, windows, N of M."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lockstep.config import read_params, section


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftThresholds(_Strict):
    """When a feature, the predictions and the dataset count as drifted (Evidently's defaults)."""

    small_reference: int = Field(default=1000, gt=0)  # reference rows <= this: K-S and chi-square
    ks_p_value: float = Field(default=0.05, gt=0, lt=1)  # numeric, small reference: drift when p < this
    chi2_p_value: float = Field(default=0.05, gt=0, lt=1)  # categorical, small reference
    wasserstein: float = Field(default=0.1, gt=0)  # numeric, large reference: normed distance >= this
    jensen_shannon: float = Field(default=0.1, gt=0)  # categorical, large reference
    psi: float = Field(default=0.2, gt=0)  # predictions: population stability index >= this
    drift_share: float = Field(default=0.5, gt=0, le=1)  # dataset drift: drifted features' share >= this
    categorical_max_unique: int = Field(default=5, ge=1)  # numeric columns with at most this many values


class PromptThresholds(_Strict):
    """A prompt's answers in the latest window against its golden-set baseline (reports/prompts)."""

    min_answers: int = Field(default=20, gt=0)  # fewer logged answers of a prompt: not judged
    max_length_change: float = Field(default=0.5, ge=0)  # mean answer words vs the golden outputs', relative
    max_refusal_increase: float = Field(default=0.05, ge=0)  # share of answers that refuse, minus the baseline's
    max_schema_failure_increase: float = Field(default=0.05, ge=0)  # empty, invalid or schema-failing answers
    max_pii_increase: float = Field(default=0.0, ge=0)  # answers with PII, minus the golden set's pii_leak_rate


class MonitorConfig(_Strict):
    """conf/monitor: what the service logs, and how `lockstep monitor` judges the windows."""

    log: str = "monitor/inference.db"  # SQLite file, or postgresql://user@host:port/db (no password)
    log_url_env: str = "LOCKSTEP_MONITOR_LOG"  # a variable that, when set, names the log instead (a secret)
    sample_rate: float = Field(default=1.0, ge=0, le=1)  # share of requests logged
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


def monitor_config(params_file: Path) -> MonitorConfig | None:
    """conf/monitor from params.yaml; None when the project has no monitor section (no log)."""
    params = read_params(params_file)
    if "monitor" not in params:
        return None
    return section(params, "monitor", MonitorConfig, params_file)
