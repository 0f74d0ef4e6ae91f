"""The canary controller: step the challenger's share of traffic up, window by window, or roll it back.

    lockstep canary --url http://127.0.0.1:8000      # make canary URL=...

Each analysis window (conf/deploy window_s) the controller reads the service's /metrics before
and after, and compares the canary with stable over that window:

- too few requests on either arm (thresholds.min_samples): inconclusive, the step holds; it
  never promotes on no data. At 100 % stable has no traffic: the last stable window with
  enough requests is the baseline.
- hard breach, rollback at once: canary p95 latency above sla_p95_ms, or canary error rate
  above max_error_rate.
- failed window: p95 above max_p95_ratio x stable's (and more than p95_slack_ms above it),
  error rate more than max_error_rate_increase above stable's, or quality failures (empty,
  invalid, schema-failing, PII answers) more than max_quality_failure_increase above stable's.
  failure_limit failed windows roll back.
- stable failing by the same absolute limits (p95 above the SLA, error rate above
  max_error_rate): the canary cannot be judged against it; the rollout halts, the weight where it
  was, naming stable's failure (halted; run it again once stable is mended: it resumes).
- a passing window advances to the next weight (steps); passing at the last one promotes.

Promotion moves `champion` to the canary's model and prompt versions and `previous_champion` to
the ones it replaces. Rollback sets the weight to 0, leaves `champion` alone and tags the canary's
versions `rolled_back` with the reasons. Every decision is appended to the decision record
(conf/deploy decisions, JSON lines); a controller restarted mid-rollout resumes from it. After
max_windows windows without a decision the controller stops, the weight where it was, and says
so (undecided): a person decides, or starts it again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockstep import metric_names as names
from lockstep.config import Params, StageError, one_line
from lockstep.deploy_lock import DeployLock
from lockstep.settings import DeployConfig, Thresholds

FINAL = ("promote", "rollback")


def scrape(client: Any) -> dict[str, dict[str, Any]]:
    """Per variant: requests, errors, quality failures and the latency histogram's cumulative buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text, _ = client.get("/metrics")
    if status != 200:
        raise StageError(f"canary: GET /metrics answered HTTP {status}")
    arms: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            variant = sample.labels.get("variant")
            if variant is None:
                continue
            arm = arms.setdefault(variant, {"requests": 0.0, "errors": 0.0, "quality": 0.0, "buckets": {}})
            if sample.name == names.total(names.REQUESTS):
                arm["requests"] += sample.value
            elif sample.name == names.total(names.ERRORS):
                arm["errors"] += sample.value
            elif sample.name == names.total(names.QUALITY_FAILURES):
                arm["quality"] += sample.value
            elif sample.name == names.bucket(names.LATENCY):
                le = float(sample.labels["le"])
                arm["buckets"][le] = arm["buckets"].get(le, 0.0) + sample.value
    return arms


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    rank = q * buckets[edges[-1]]
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = edge, count
    return lower


def window_stats(before: dict[str, Any], after: dict[str, Any], variant: str) -> dict[str, Any]:
    empty = {"requests": 0.0, "errors": 0.0, "quality": 0.0, "buckets": {}}
    a, b = after.get(variant, empty), before.get(variant, empty)
    n = a["requests"] - b["requests"]
    buckets = {le: c - b["buckets"].get(le, 0.0) for le, c in a["buckets"].items()}
    p95 = quantile(0.95, buckets) if n > 0 else None
    return {
        "requests": int(n),
        "error_rate": round((a["errors"] - b["errors"]) / n, 4) if n else 0.0,
        "quality_rate": round((a["quality"] - b["quality"]) / n, 4) if n else 0.0,
        "p95_ms": round(p95 * 1000, 2) if p95 is not None else None,
    }


def judge(th: Thresholds, canary: dict[str, Any], stable: dict[str, Any] | None) -> tuple[str, list[str]]:
    """pass, fail, hard (roll back at once) or inconclusive, and the reasons."""
    if canary["requests"] < th.min_samples:
        return "inconclusive", [f"canary had {canary['requests']} requests < min_samples {th.min_samples}"]
    if stable is None or stable["requests"] < th.min_samples:
        got = stable["requests"] if stable else 0
        return "inconclusive", [f"stable had {got} requests < min_samples {th.min_samples}"]
    hard = []
    p95 = canary["p95_ms"] or 0.0
    if p95 > th.sla_p95_ms:
        hard.append(f"canary p95 {p95:.0f} ms > SLA {th.sla_p95_ms:g} ms")
    if canary["error_rate"] > th.max_error_rate:
        hard.append(f"canary error rate {canary['error_rate']:.2%} > {th.max_error_rate:.2%}")
    if hard:
        return "hard", hard
    # Stable failing by the same absolute limits: the canary cannot be judged against it (a broken
    # stable makes any canary look slow or good); the rollout stops, and says why
    sick = (
        [f"stable p95 {stable['p95_ms'] or 0:.0f} ms > SLA {th.sla_p95_ms:g} ms"]
        if (stable["p95_ms"] or 0) > th.sla_p95_ms
        else []
    )
    if stable["error_rate"] > th.max_error_rate:
        sick.append(f"stable error rate {stable['error_rate']:.2%} > {th.max_error_rate:.2%}")
    if sick:
        return "stable_failing", [*sick, "stable itself is failing: the canary is not judged against it"]
    failed = []
    base = stable["p95_ms"] or 0.0
    if p95 > base * th.max_p95_ratio and p95 - base > th.p95_slack_ms:
        failed.append(f"canary p95 {p95:.0f} ms > {th.max_p95_ratio:g} x stable's {base:.0f} ms")
    if canary["error_rate"] - stable["error_rate"] > th.max_error_rate_increase:
        failed.append(
            f"canary error rate {canary['error_rate']:.2%} vs stable {stable['error_rate']:.2%}"
            f" (> +{th.max_error_rate_increase:.2%})"
        )
    if canary["quality_rate"] - stable["quality_rate"] > th.max_quality_failure_increase:
        failed.append(
            f"canary quality failures {canary['quality_rate']:.2%} vs stable {stable['quality_rate']:.2%}"
            f" (> +{th.max_quality_failure_increase:.2%})"
        )
    return ("fail", failed) if failed else ("pass", [])


def read_record(path: Path, deploy_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: the decision it held was not acted on
    return [e for e in entries if e.get("deploy_id") == deploy_id]


def append_record(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class Registry:
    """What promotion and rollback change in MLflow: aliases and tags on the locked versions."""

    def __init__(self, lock: DeployLock, deploy: DeployConfig) -> None:
        self.lock, self.deploy = lock, deploy

    def check(self) -> None:
        """Refuse a rollout whose canary could never become stable: no `decision=allow` on its exact
        version (or one decided on another commit's gate results, or rolled back, or denied)."""
        from lockstep import aliases
        from lockstep.registry import mlflow_client

        canary = self.lock.variants["canary"].model
        with mlflow_client() as client:
            tags = dict(client.get_model_version(canary.name, str(canary.version)).tags)
        why = aliases.promotable(tags, f"models:/{canary.name}/{canary.version}")
        if why:
            raise StageError(f"canary: the canary cannot become {self.deploy.stable_alias}: {'; '.join(why)}")

    def promote(self) -> None:
        from lockstep import aliases
        from lockstep.registry import mlflow_client

        stable, canary = self.lock.stable, self.lock.variants["canary"]
        why = {"deploy_id": self.lock.deploy_id, "via": "canary"}
        with mlflow_client() as client:
            name = canary.model.name
            current = client.get_model_version_by_alias(name, self.deploy.stable_alias)
            if int(current.version) != canary.model.version:  # not already promoted (a resumed run)
                aliases.move_model(client, name, "previous_champion", stable.model.version, "canary", **why)
                for p in stable.prompts.values():
                    aliases.move_prompt(p.name, "previous_champion", p.version, "canary", **why)
            version = canary.model.version
            decision = dict(client.get_model_version(name, str(version)).tags).get("decision", "none")
            aliases.move_model(client, name, self.deploy.stable_alias, version, decision, stable=True, **why)
            for p in canary.prompts.values():
                aliases.move_prompt(p.name, self.deploy.stable_alias, p.version, decision, **why)
            client.set_model_version_tag(name, str(version), "promoted", self.lock.deploy_id)

    def rollback(self, reasons: list[str]) -> None:
        import mlflow

        from lockstep.registry import mlflow_client

        canary = self.lock.variants["canary"]
        tags = {"rolled_back": "true", "rolled_back.reasons": one_line("; ".join(reasons), 5000),
                "rolled_back.deploy_id": self.lock.deploy_id}  # fmt: skip
        with mlflow_client() as client:
            for key, value in tags.items():
                client.set_model_version_tag(canary.model.name, str(canary.model.version), key, value)
                for p in canary.prompts.values():
                    mlflow.genai.set_prompt_version_tag(p.name, p.version, key, value)


class Controller:
    def __init__(
        self,
        deploy: DeployConfig,
        lock: DeployLock,
        client: Any,
        admin_token: str,
        record: Path | None = None,
        wait: Callable[[float], None] = time.sleep,
        registry: Any = None,
        say: Callable[[str], None] = print,
    ) -> None:
        if lock.canary is None:
            raise StageError("canary: the lock has no canary variant (challenger is champion); nothing to roll out")
        self.deploy, self.lock, self.client, self.token = deploy, lock, client, admin_token
        self.record = record or deploy.decisions
        self.wait, self.say = wait, say
        self.registry = registry or Registry(lock, deploy)

    def set_weight(self, weight: float) -> None:
        status, body, _ = self.client.request("PUT", "/admin/weight", {"weight": weight}, {"X-Admin-Token": self.token})
        if status != 200:
            raise StageError(f"canary: setting the weight to {weight:g} answered HTTP {status}: {body}")
        if body.get("deploy_id") != self.lock.deploy_id:
            raise StageError(f"canary: the service runs deploy {body.get('deploy_id')}, not {self.lock.deploy_id}")

    def log(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"deploy_id": self.lock.deploy_id, "at": datetime.now(UTC).isoformat(timespec="seconds"), **entry}
        append_record(self.record, entry)
        reasons = "; ".join(entry.get("reasons", []))
        self.say(
            f"canary: window {entry.get('window', '-')} at {entry.get('weight', 0):g}%: "
            f"{entry.get('verdict', entry['event'])} -> {entry['action']}{f' ({reasons})' if reasons else ''}"
        )
        return entry

    def finish(self, action: str, reasons: list[str], state: dict[str, Any]) -> str:
        if action == "rollback":
            self.set_weight(0)
            self.registry.rollback(reasons)
        else:
            self.registry.promote()
        self.log({"event": action, "action": action, "reasons": reasons, **state})
        return action

    def run(self) -> str:
        """promote, rollback, halted (stable failing), or undecided (max_windows without a decision)."""
        steps, th = self.deploy.steps, self.deploy.thresholds
        history = read_record(self.record, self.lock.deploy_id)
        done = [e for e in history if e["event"] in FINAL]
        if done:
            self.say(f"canary: deploy {self.lock.deploy_id} already decided: {done[-1]['event']}")
            return done[-1]["event"]
        windows = [e for e in history if e["event"] == "window"]
        last = windows[-1] if windows else {}
        step, failures = last.get("next_step", 0), last.get("failures", 0)
        baseline = last.get("baseline")
        check = getattr(self.registry, "check", None)
        if check is not None:  # before any traffic moves: a canary that could never be promoted is not started
            check()
        if windows:
            self.say(f"canary: resuming deploy {self.lock.deploy_id} at step {step} after {len(windows)} windows")
        else:
            self.log({"event": "start", "action": "start", "weight": steps[0], "steps": steps})
        self.set_weight(steps[step])
        for number in range(len(windows) + 1, self.deploy.max_windows + 1):
            weight = steps[step]
            before = scrape(self.client)
            self.wait(self.deploy.window_s)
            after = scrape(self.client)
            canary, stable = window_stats(before, after, "canary"), window_stats(before, after, "stable")
            if stable["requests"] >= th.min_samples:
                baseline = stable
            verdict, reasons = judge(th, canary, stable if weight < 100 else baseline)
            action = {"pass": "advance", "fail": "hold", "inconclusive": "hold", "hard": "rollback",
                      "stable_failing": "halt"}[verdict]  # fmt: skip
            if verdict == "fail":
                failures += 1
                if failures >= self.deploy.failure_limit:
                    action = "rollback"
                    reasons = [*reasons, f"{failures} failed windows (failure_limit {self.deploy.failure_limit})"]
            if action == "advance" and step == len(steps) - 1:
                action = "promote"
            elif action == "advance":
                step += 1
            state = {"window": number, "weight": weight, "step": steps.index(weight), "failures": failures}
            arms = {"canary": canary, "stable": stable, "baseline": baseline}
            self.log({"event": "window", "verdict": verdict, "action": action, "reasons": reasons,
                      "next_step": step, **arms, **state})  # fmt: skip
            if action in FINAL:
                return self.finish(action, reasons, state)
            if action == "halt":  # not final: once stable is mended, the same rollout resumes from here
                self.say(f"canary: halted at {weight:g}%: fix stable, then run the canary again")
                return "halted"
            if steps[step] != weight:
                self.set_weight(steps[step])
        self.say(f"canary: {self.deploy.max_windows} windows without a decision; weight stays at {steps[step]:g}%")
        return "undecided"


def canary(params: Params, url: str, lock_file: Path | None = None) -> str:
    """The controller against a running service, to its outcome: promote, rollback or undecided."""
    from lockstep.deploy_lock import read_lock
    from lockstep.serve.client import Client
    from lockstep.serve.http import ADMIN_TOKEN_ENV

    deploy = params.deploy
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise StageError(f"canary: set {ADMIN_TOKEN_ENV} to the service's admin token")
    lock = read_lock(lock_file or deploy.lock_file)
    return Controller(deploy, lock, Client(url), token).run()
