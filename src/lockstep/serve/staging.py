"""Staging: the locked service started on loopback, evaluated over HTTP, the verdict in the registry.

    lockstep staging         # make staging

Starts the service of deploy.lock.json on a free loopback port with every request routed to the
variant under test (the canary when the lock has one, else stable), and sends it over HTTP:
each golden case of each prompt, scored with the pipeline's own scorers (ROUGE-L, exact match,
PII, banned phrases, injections), and the test split's rows, scored as accuracy (r2, rmse for
regression). The gate's absolute limits (conf/gates min / max) judge the result; comparisons
with a base branch do not apply here. The verdict and the figures are tagged on the model
version and on each prompt version (`staging.passed`, `staging.rouge_l`, ...) and written to
reports/staging.json; a failure stops the rollout (`lockstep staging` exits 1).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lockstep.config import DataConfig, Params, StageError
from lockstep.io import write_json

BATCH_ROWS = 64
REPORT = Path("reports/staging.json")


def answer_over_http(client: Any, name: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records as prompt_eval.answer_all, from the live endpoint."""
    records = []
    for case in cases:
        start = time.perf_counter()
        status, body, _ = client.post(f"/v1/prompts/{name}", {"variables": case["inputs"]}, key=str(case["id"]))
        latency = time.perf_counter() - start
        if status != 200:
            raise StageError(f"staging: prompt {name} case {case['id']}: HTTP {status}: {body}")
        records.append(
            {
                "id": case["id"],
                "inputs": case["inputs"],
                "output": body["answer"],
                "expected": case["expected"],
                "tags": case.get("tags", []),
                "must_not_contain": case.get("must_not_contain", []),
                "input_tokens": body["tokens"]["input"],
                "output_tokens": body["tokens"]["output"],
                "latency_s": round(latency, 4),
                "version": body["prompt"]["version"],
            }
        )
    return records


def predict_over_http(client: Any, test: Path, data: DataConfig) -> tuple[dict[str, float], int]:
    import json

    import numpy as np
    import pandas as pd
    from sklearn import metrics

    frame = pd.read_parquet(test)
    labels = frame[data.target]
    features = frame.drop(columns=[data.target])
    predictions: list[Any] = []
    version = 0
    for start in range(0, len(features), BATCH_ROWS):
        rows = json.loads(features.iloc[start : start + BATCH_ROWS].to_json(orient="records"))
        status, body, _ = client.post("/v1/predict", {"rows": rows}, key=f"staging-{start}")
        if status != 200:
            raise StageError(f"staging: predict: HTTP {status}: {body}")
        predictions += body["predictions"]
        version = body["model"]["version"]
    if data.task == "regression":
        scores = {
            "r2": float(metrics.r2_score(labels, predictions)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(labels, predictions))),
        }
    else:
        scores = {"accuracy": float(metrics.accuracy_score(labels.astype(str), [str(p) for p in predictions]))}
    return scores, version


def judge(params: Params, metrics: dict[str, float]) -> list[str]:
    """The gate's absolute limits on the metrics staging measured; the reasons it fails."""
    task = params.data.task if params.data else None
    failures = []
    for rule in params.gates.rules if params.gates else []:
        if not rule.applies_to(task):
            continue
        for name, value in metrics.items():
            if not rule.matches(name):
                continue
            if rule.min is not None and value < rule.min:
                failures.append(f"{name}: {value:.4g} < min {rule.min:g}")
            if rule.max is not None and value > rule.max:
                failures.append(f"{name}: {value:.4g} > max {rule.max:g}")
    return failures


def staging(params: Params, lock_file: Path | None = None) -> dict[str, Any]:
    """The locked canary (else stable) evaluated over HTTP, the verdict tagged on its versions and
    written to reports/staging.json; the report."""
    import mlflow

    from lockstep.budget import price_of
    from lockstep.prompt_eval import aggregate, score_cases
    from lockstep.prompts import load_golden
    from lockstep.registry import mlflow_client
    from lockstep.serve.client import Client
    from lockstep.serve.server import Running, build

    paths = params.paths
    app, service = build(params, lock_file, log=False)
    variant = "canary" if "canary" in service.variants else "stable"
    service.set_weight(100 if variant == "canary" else 0)
    v = service.variants[variant]
    metrics: dict[str, float] = {}
    per_prompt: dict[str, dict[str, float]] = {}
    with Running(app) as running:
        client = Client(running.url)
        if paths is not None and params.data is not None and paths.test.exists():
            scores, version = predict_over_http(client, paths.test, params.data)
            assert version == v.locked.model.version
            metrics |= {f"reports/metrics.json:{k}": round(x, 4) for k, x in scores.items()}
        if v.prompts:
            paths = params.need("paths")  # staging reads the golden sets from it
            prompts, llm = params.need("prompts"), params.need("llm")
            for name, prompt in v.prompts.items():
                records = answer_over_http(client, name, load_golden(paths.golden_file(name), prompt))
                price = price_of(llm, prompt.model_settings.model, paths.prices)
                per_prompt[name] = aggregate(records, score_cases(records, prompts.banned_phrases), price)
                metrics |= {f"reports/prompts/{name}/metrics.json:{k}": x for k, x in per_prompt[name].items()}
        client.close()
    failures = judge(params, metrics)
    passed = not failures
    report = {
        "passed": passed,
        "failures": failures,
        "deploy_id": service.deploy_id,
        "variant": variant,
        **v.versions(),
        "metrics": metrics,
    }
    write_json(REPORT, report)
    with mlflow_client() as registry:
        model = v.locked.model
        tags = {"staging.passed": str(passed).lower(), "staging.deploy_id": service.deploy_id}
        model_metrics = {k.rpartition(":")[2]: x for k, x in metrics.items() if k.startswith("reports/metrics")}
        tags |= {f"staging.{k}": str(x) for k, x in model_metrics.items()}
        for key, value in tags.items():
            registry.set_model_version_tag(model.name, str(model.version), key, value)
        for name, figures in per_prompt.items():
            version = v.locked.prompts[name].version
            prompt_failed = any(f.startswith(f"reports/prompts/{name}/") for f in failures)
            mlflow.genai.set_prompt_version_tag(name, version, "staging.passed", str(not prompt_failed).lower())
            mlflow.genai.set_prompt_version_tag(name, version, "staging.deploy_id", service.deploy_id)
            for key in ("rouge_l", "exact_match", "pii_leak_rate", "latency_p95_s"):
                mlflow.genai.set_prompt_version_tag(name, version, f"staging.{key}", str(figures[key]))
    return report
