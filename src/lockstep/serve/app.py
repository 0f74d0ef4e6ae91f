"""The service: exactly the locked versions, a sticky canary router, Prometheus metrics per variant.

    lockstep serve [--port PORT] [--weight W] [--inject latency=300ms,errors=5%]

    GET  /health               the deploy id, the canary weight and each variant's versions
    POST /v1/predict           {"rows": [{feature: value, ...}, ...]} -> {"predictions": [...]}
    POST /v1/prompts/{name}    {"variables": {...}} -> {"answer": "..."}
    GET  /metrics              requests, errors, latency, tokens, quality failures, per variant
    PUT  /admin/weight         {"weight": 25}; only with LOCKSTEP_ADMIN_TOKEN set, in X-Admin-Token

Every answer names the variant and versions that produced it (body and X-Lockstep-* headers).
Routing: bucket = sha256(f"{deploy_id}:{key}") mod 10000, canary when bucket < weight * 100. The
key is the X-Request-Key header (a user or session id keeps its cohort), else random; a cohort
that is on the canary at 10 % stays on it at 25 %. With conf/deploy shadow, requests answered by
stable are also answered by the canary in the background, its answer discarded (variant "shadow").
The project supplies only its own code, in the module conf/deploy `app` names: an optional
`prepare_rows(frame) -> frame` before predict and `answer(prompt, variables, llm) -> Answer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse

from lockstep.config import LLMConfig, StageError, read_params, section, tracking_uri
from lockstep.serve.config import DeployConfig

BUCKETS = 10000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
ADMIN_TOKEN_ENV = "LOCKSTEP_ADMIN_TOKEN"
INJECT_ENV = "LOCKSTEP_INJECT"


def bucket(deploy_id: str, key: str) -> int:
    """The request key's cohort, 0..9999: the same in every process (never Python's hash())."""
    return int.from_bytes(hashlib.sha256(f"{deploy_id}:{key}".encode()).digest()[:8], "big") % BUCKETS


def route(deploy_id: str, key: str, weight: float) -> str:
    """stable or canary; monotone: raising the weight only moves cohorts from stable to canary."""
    return "canary" if bucket(deploy_id, key) < weight * BUCKETS / 100 else "stable"


@dataclass
class Faults:
    """Faults injected into one arm for rehearsals: added latency, and a share of failed requests."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        faults = cls()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            key, _, value = part.partition("=")
            if key == "latency" and (m := re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", value)):
                faults.latency_s = float(m[1]) / (1000 if m[2] == "ms" else 1)
            elif key == "errors" and (m := re.fullmatch(r"(\d+(?:\.\d+)?)%", value)):
                faults.error_rate = float(m[1]) / 100
            else:
                raise StageError(f"inject: '{part}' is not latency=<N>ms or errors=<N>%")
        return faults

    def apply(self) -> None:
        """Sleep and/or fail; failures are spread evenly: exactly 5 % of requests at errors=5%."""
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.error_rate:
            with self._lock:
                n, self._count = self._count, self._count + 1
            if math.floor((n + 1) * self.error_rate) > math.floor(n * self.error_rate):
                raise RuntimeError("injected fault")


@dataclass
class Variant:
    name: str
    model: Any
    model_ref: dict[str, Any]
    prompts: dict[str, Any]  # name -> lockstep.prompts.Prompt
    prompt_refs: dict[str, dict[str, Any]]
    faults: Faults = field(default_factory=Faults)

    def versions(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model_ref["name"], "version": self.model_ref["version"]},
            "prompts": {n: p["version"] for n, p in self.prompt_refs.items()},
        }


def registry_prompt(name: str, version: int) -> Any:
    """prompts:/name/N from the Prompt Registry as a lockstep Prompt (never by alias)."""
    import mlflow

    from lockstep.prompts import VARIABLE, Message, ModelSettings, Prompt

    loaded = mlflow.genai.load_prompt(f"prompts:/{name}/{version}")
    template = loaded.template
    texts = [template] if isinstance(template, str) else [m["content"] for m in template]
    return Prompt(
        name=name,
        description=loaded.commit_message or name,
        template=template if isinstance(template, str) else [Message(**m) for m in template],
        input_variables=sorted({v for text in texts for v in VARIABLE.findall(text)}),
        model_settings=ModelSettings(**(loaded.model_config or {})),
        response_format=loaded.response_format,
    )


def load_variant(name: str, locked: dict[str, Any]) -> Variant:
    import mlflow

    ref = locked["model"]
    model = mlflow.pyfunc.load_model(f"models:/{ref['name']}/{ref['version']}")
    prompts = {p["name"]: registry_prompt(p["name"], p["version"]) for p in locked["prompts"].values()}
    return Variant(name, model, ref, prompts, locked["prompts"])


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("variant", "endpoint")
        self.requests = Counter("lockstep_requests", "Requests answered", labels, registry=self.registry)
        self.errors = Counter("lockstep_errors", "Requests failed (HTTP 5xx)", labels, registry=self.registry)
        self.latency = Histogram(
            "lockstep_request_latency_seconds", "Time to answer", labels, buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter("lockstep_tokens", "LLM tokens", ("variant", "kind"), registry=self.registry)
        self.quality = Counter(
            "lockstep_quality_failures", "Empty, invalid, schema-failing or PII answers", ("variant", "kind"),
            registry=self.registry,
        )  # fmt: skip
        self.weight = Gauge("lockstep_canary_weight", "Share of cohorts on the canary, %", registry=self.registry)
        self.log_dropped = Counter(
            "lockstep_inference_log_dropped", "Inference log records dropped (queue full or write failed)",
            registry=self.registry,
        )  # fmt: skip


REFUSAL = re.compile(r"\b(I can(?:no|')t|I am unable|I'm unable|I won't|I'm sorry|As an AI)\b", re.IGNORECASE)


def quality_failures(text: str, schema: dict[str, Any] | None, pii: Any) -> list[str]:
    """The quality signals available online: empty, invalid JSON, schema failure, PII in the answer."""
    if not text.strip():
        return ["empty"]
    failures = []
    if schema:
        try:
            import jsonschema

            jsonschema.validate(json.loads(text), schema)
        except json.JSONDecodeError:
            failures.append("invalid")
        except jsonschema.ValidationError:
            failures.append("schema")
    if pii is not None and str(pii(outputs=text).value) != "yes":  # the prompt gate's detector
        failures.append("pii")
    return failures


class Service:
    """The variants, the router and the metrics; the FastAPI app is built around one of these."""

    def __init__(
        self,
        lock: dict[str, Any],
        llm: LLMConfig | None = None,
        deploy: DeployConfig | None = None,
        weight: float = 0.0,
        inject: str | None = None,
        hooks: Any = None,
        check_pii: bool = True,
        monitor: Any = None,
    ) -> None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri())
        self.deploy = deploy or DeployConfig()
        self.lock = lock
        self.deploy_id = lock["deploy_id"]
        self.variants = {name: load_variant(name, v) for name, v in lock["variants"].items()}
        if inject and "canary" not in self.variants:
            raise StageError("inject: the lock has no canary variant to inject faults into")
        if "canary" in self.variants:
            self.variants["canary"].faults = Faults.parse(inject)
        self.metrics = Metrics()
        self.weight = 0.0
        self.set_weight(weight)
        self.hooks = hooks
        self.llm_config = llm
        self._llm: Any = None
        self._llm_lock = threading.Lock()
        self.pii: Any = None
        if check_pii and any(v.prompts for v in self.variants.values()):
            from mlflow.genai.scorers import PIIDetection

            self.pii = PIIDetection()
        self.shadow = ThreadPoolExecutor(max_workers=2) if self.deploy.shadow and "canary" in self.variants else None
        self.log: Any = None  # conf/monitor's inference log, when the project has one
        self.clock = time.time  # the log's timestamps; a rehearsal replaces it with a virtual clock
        if monitor is not None:
            from lockstep.monitor.log import InferenceLog

            drops = self.metrics.log_dropped.inc
            self.log = InferenceLog(monitor.store, monitor.sample_rate, monitor.queue_size, drops)

    def close(self) -> None:
        """Write the queued log records and stop the writer."""
        if self.log is not None:
            self.log.close()

    def _record(self, arm: str, endpoint: str, v: Variant, start: float, **fields: Any) -> None:
        if self.log is None:
            return
        self.log.record(
            ts=self.clock(), deploy_id=self.deploy_id, variant=arm, endpoint=endpoint, model_name=v.model_ref["name"],
            model_version=v.model_ref["version"], latency_ms=(time.perf_counter() - start) * 1000, **fields,
        )  # fmt: skip

    def set_weight(self, weight: float) -> None:
        if not 0 <= weight <= 100:
            raise StageError(f"weight {weight}: must be between 0 and 100")
        if weight and "canary" not in self.variants:
            raise StageError("weight: the lock has no canary variant (challenger is champion)")
        self.weight = float(weight)  # one assignment: requests in flight see the old or the new weight
        self.metrics.weight.set(self.weight)

    def choose(self, key: str | None) -> str:
        if "canary" not in self.variants:
            return "stable"
        return route(self.deploy_id, key or uuid.uuid4().hex, self.weight)

    def llm(self) -> Any:
        with self._llm_lock:
            if self._llm is None:
                if self.llm_config is None:
                    raise StageError("no llm section in params.yaml: the service cannot answer prompts")
                from lockstep.llm import backend

                self._llm = backend(self.llm_config)
            return self._llm

    def _observe(self, arm: str, endpoint: str, run: Any) -> Any:
        start = time.perf_counter()
        try:
            return run()
        except StageError:
            raise
        except Exception:
            self.metrics.errors.labels(arm, endpoint).inc()
            raise
        finally:
            self.metrics.requests.labels(arm, endpoint).inc()
            self.metrics.latency.labels(arm, endpoint).observe(time.perf_counter() - start)

    def predict(self, variant: str, rows: list[dict[str, Any]], arm: str | None = None) -> dict[str, Any]:
        import pandas as pd

        v = self.variants[variant]
        arm = arm or variant
        start = time.perf_counter()

        def run() -> list[Any]:
            v.faults.apply()
            frame = pd.DataFrame(rows)
            prepare = getattr(self.hooks, "prepare_rows", None)
            out = v.model.predict(prepare(frame) if prepare else frame)
            values = [x.item() if hasattr(x, "item") else x for x in (out.tolist() if hasattr(out, "tolist") else out)]
            if any(x is None or (isinstance(x, float) and math.isnan(x)) for x in values):
                self.metrics.quality.labels(arm, "invalid").inc()
                quality.append("invalid")
            return values

        quality: list[str] = []
        try:
            predictions = self._observe(arm, "predict", run)
        except Exception as exc:
            self._record(arm, "predict", v, start, inputs=rows, quality=quality, error=f"{type(exc).__name__}: {exc}")
            raise
        self._record(arm, "predict", v, start, inputs=rows, outputs=predictions, quality=quality)
        return {"predictions": predictions, "variant": variant, "deploy_id": self.deploy_id, **v.versions()}

    def answer(self, variant: str, name: str, variables: dict[str, Any], arm: str | None = None) -> dict[str, Any]:
        v = self.variants[variant]
        arm = arm or variant
        if name not in v.prompts:
            raise KeyError(name)
        prompt = v.prompts[name]
        start = time.perf_counter()
        quality: list[str] = []

        def run() -> Any:
            v.faults.apply()
            hook = getattr(self.hooks, "answer", None)
            if hook:
                reply = hook(prompt, variables, self.llm())
            else:
                reply = self.llm().chat(prompt.render(variables), prompt.model_settings, prompt.response_format)
            self.metrics.tokens.labels(arm, "input").inc(reply.input_tokens)
            self.metrics.tokens.labels(arm, "output").inc(reply.output_tokens)
            for kind in quality_failures(reply.text, prompt.response_format, self.pii):
                self.metrics.quality.labels(arm, kind).inc()
                quality.append(kind)
            if REFUSAL.search(reply.text):
                quality.append("refusal")  # logged for the monitor; not a canary failure
            return reply

        missing = set(prompt.input_variables) - set(variables)
        if missing:
            raise StageError(f"prompt {name}: no value for variable(s) {', '.join(sorted(missing))}")
        logged = {"prompt_name": name, "prompt_version": v.prompt_refs[name]["version"], "inputs": variables}
        try:
            reply = self._observe(arm, "prompt", run)
        except Exception as exc:
            self._record(arm, "prompt", v, start, quality=quality, error=f"{type(exc).__name__}: {exc}", **logged)
            raise
        self._record(arm, "prompt", v, start, outputs=reply.text, quality=quality, **logged)
        return {
            "answer": reply.text,
            "variant": variant,
            "deploy_id": self.deploy_id,
            "model": v.versions()["model"],
            "prompt": {"name": name, "version": v.prompt_refs[name]["version"]},
            "tokens": {"input": reply.input_tokens, "output": reply.output_tokens},
        }

    def mirror(self, call: str, *args: Any) -> None:
        """Answer with the canary too, in the background, as variant "shadow"; the answer is dropped."""
        if self.shadow is None:
            return
        method = self.predict if call == "predict" else self.answer

        def run() -> None:
            with contextlib.suppress(Exception):  # counted in the shadow's metrics, never reaches a client
                method("canary", *args, arm="shadow")

        self.shadow.submit(run)


def create_app(service: Service, admin_token: str | None = None) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title="lockstep", version=service.deploy_id)
    app.state.service = service

    def respond(body: dict[str, Any]) -> JSONResponse:
        headers = {"X-Lockstep-Variant": body["variant"], "X-Lockstep-Deploy": service.deploy_id}
        return JSONResponse(body, headers=headers)

    def failed(variant: str, exc: Exception) -> HTTPException:
        detail = {"error": f"{type(exc).__name__}: {exc}"[:300], "variant": variant, "deploy_id": service.deploy_id}
        return HTTPException(500, detail, headers={"X-Lockstep-Variant": variant})

    @app.get("/health")
    def health() -> dict[str, Any]:
        versions = {name: v.versions() for name, v in service.variants.items()}
        return {"status": "ok", "deploy_id": service.deploy_id, "weight": service.weight, "variants": versions}

    @app.post("/v1/predict")
    def predict(
        rows: Annotated[list[dict[str, Any]], Body(embed=True)], x_request_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        variant = service.choose(x_request_key)
        try:
            body = service.predict(variant, rows)
        except StageError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            raise failed(variant, exc) from None
        if variant == "stable":
            service.mirror("predict", rows)
        return respond(body)

    @app.post("/v1/prompts/{name}")
    def prompt(
        name: str,
        variables: Annotated[dict[str, Any], Body(embed=True)],
        x_request_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        variant = service.choose(x_request_key)
        try:
            body = service.answer(variant, name, variables)
        except KeyError:
            raise HTTPException(404, f"no prompt {name} in this deployment") from None
        except StageError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            raise failed(variant, exc) from None
        if variant == "stable":
            service.mirror("answer", name, variables)
        return respond(body)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.put("/admin/weight")
    def weight(
        weight: Annotated[float, Body(embed=True)], x_admin_token: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        if not admin_token:
            raise HTTPException(404, "not found")
        import hmac

        if not hmac.compare_digest(x_admin_token or "", admin_token):
            raise HTTPException(403, "bad admin token")
        try:
            service.set_weight(weight)
        except StageError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"weight": service.weight, "deploy_id": service.deploy_id}

    return app


def build(
    params_file: Path,
    lock_file: Path | None = None,
    weight: float = 0.0,
    inject: str | None = None,
    admin_token: str | None = None,
    log: bool = True,
) -> tuple[Any, Service]:
    """The app of a project: its params, its lock, its hooks module; the admin token, else $LOCKSTEP_ADMIN_TOKEN.
    log=False: no inference log (staging and rehearsals keep their traffic out of production's)."""
    from lockstep.monitor.config import monitor_config
    from lockstep.serve.config import deploy_config
    from lockstep.serve.lock import read_lock

    params = read_params(params_file)
    deploy = deploy_config(params_file)
    llm = section(params, "llm", LLMConfig, params_file) if "llm" in params else None
    hooks = importlib.import_module(deploy.app) if deploy.app else None
    lock = read_lock(lock_file or deploy.lock_file)
    service = Service(lock, llm, deploy, weight, inject, hooks, monitor=monitor_config(params_file) if log else None)
    return create_app(service, admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None), service


def serve(params_file: Path, host: str, port: int, lock_file: Path | None, weight: float, inject: str | None) -> int:
    """Serve until stopped; port 0 takes a free port, and the line printed names the one bound."""
    import socket

    import uvicorn

    app, service = build(params_file, lock_file, weight, inject or os.environ.get(INJECT_ENV))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY: a response's headers and body go out at once
    # instead of the body waiting ~40 ms for the client's delayed ACK (Nagle's algorithm).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    where = f"http://{host}:{sock.getsockname()[1]}"
    versions = ", ".join(f"{n}={json.dumps(v.versions(), sort_keys=True)}" for n, v in service.variants.items())
    print(f"serve: deploy {service.deploy_id} on {where} weight {service.weight:g}% {versions}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.close()
    return 0


class Running:
    """An app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        import socket

        import uvicorn

        # Bound and listening before uvicorn starts: a client may connect at once, its request
        # waits in the backlog until the server accepts it. No port is guessed, no wait polled.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see serve()
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        # log_config=None: leave the process's logging as it is (uvicorn's own dictConfig closes every handler
        # already configured, pytest's among them, when this runs inside another program)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
