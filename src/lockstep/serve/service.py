"""The service: exactly the locked versions, a sticky canary router, Prometheus metrics per variant.

Every answer names the variant and versions that produced it, and its request id (the client's
when well-formed, else a new one: what delayed labels are joined by in the monitor). With conf/deploy shadow, requests
answered by stable are also answered by the canary in the background, its answer discarded
(variant "shadow"). The project supplies only its own code, its hooks (lockstep.hooks): an
optional `prepare_rows(frame) -> frame` before predict and `answer(prompt, variables, llm)`.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lockstep.classes import named
from lockstep.config import LLMConfig, StageError, tracking_uri
from lockstep.deploy_lock import DeployLock
from lockstep.hooks import Hooks
from lockstep.quality import REFUSAL, quality_failures
from lockstep.serve.metrics import Metrics
from lockstep.serve.resolve import refuse_to_serve
from lockstep.serve.routing import Faults, route
from lockstep.serve.validate import Rejected, check_frame, check_rows
from lockstep.serve.variants import Variant, load_variant
from lockstep.settings import DeployConfig, MonitorConfig

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's X-Request-ID kept as given


def request_id(given: str | None = None) -> str:
    """The client's request id when well-formed (letters, digits, . _ : -, at most 128), else a new one."""
    return given if given and REQUEST_ID.match(given) else uuid.uuid4().hex


class Service:
    """The variants, the router and the metrics; the FastAPI app is built around one of these."""

    def __init__(
        self,
        lock: DeployLock,
        llm: LLMConfig | None = None,
        deploy: DeployConfig | None = None,
        weight: float = 0.0,
        inject: str | None = None,
        hooks: Hooks | None = None,
        check_pii: bool = True,
        monitor: MonitorConfig | None = None,
    ) -> None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri())
        self.deploy = deploy or DeployConfig()
        self.lock = lock
        self.deploy_id = lock.deploy_id
        refuse_to_serve(lock)
        self.variants = {name: load_variant(name, v) for name, v in lock.variants.items()}
        if inject and "canary" not in self.variants:
            raise StageError("inject: the lock has no canary variant to inject faults into")
        if "canary" in self.variants:
            self.variants["canary"].faults = Faults.parse(inject)
        self.metrics = Metrics()
        self.weight = 0.0
        self.set_weight(weight)
        self.hooks = hooks or Hooks()
        self.llm_config = llm
        self._llm: Any = None
        self._llm_lock = threading.Lock()
        self.check_pii = check_pii
        self.shadow = ThreadPoolExecutor(max_workers=2) if self.deploy.shadow and "canary" in self.variants else None
        self.log: Any = None  # conf/monitor's inference log, when the project has one
        self.clock = time.time  # the log's timestamps; a rehearsal replaces it with a virtual clock
        if monitor is not None:
            from lockstep.inference_log import InferenceLog

            drops = self.metrics.log_dropped.inc
            self.log = InferenceLog(
                monitor.store, monitor.sample_rate, monitor.queue_size, drops, fields=monitor.fields,
                patterns=monitor.redact, retention_days=monitor.retention_days, retention_rows=monitor.retention_rows,
            )  # fmt: skip

    def close(self) -> None:
        """Write the queued log records and stop the writer."""
        if self.log is not None:
            self.log.close()

    def _record(self, arm: str, endpoint: str, v: Variant, start: float, **fields: Any) -> None:
        if self.log is None:
            return
        self.log.record(
            ts=self.clock(), deploy_id=self.deploy_id, variant=arm, endpoint=endpoint, model_name=v.locked.model.name,
            model_version=v.locked.model.version, latency_ms=(time.perf_counter() - start) * 1000, **fields,
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

    def predict(
        self, variant: str, rows: list[dict[str, Any]], arm: str | None = None, request: str | None = None
    ) -> dict[str, Any]:
        import pandas as pd

        v = self.variants[variant]
        arm = arm or variant
        request = request_id(request)
        start = time.perf_counter()
        prepare = self.hooks.prepare_rows
        # A client's mistake is refused before any variant sees it (lockstep.serve.validate)
        check_rows(rows, self.deploy.max_rows)
        frame = prepare(pd.DataFrame(rows)) if prepare else pd.DataFrame(rows)
        check_frame(frame, v.columns)

        def run() -> list[Any]:
            v.faults.apply()
            out = v.model.predict(frame)
            values = [x.item() if hasattr(x, "item") else x for x in (out.tolist() if hasattr(out, "tolist") else out)]
            if any(x is None or (isinstance(x, float) and math.isnan(x)) for x in values):
                self.metrics.quality.labels(arm, "invalid").inc()
                quality.append("invalid")
            return named(values, v.classes)  # a binary model's 0/1 as the data's class names

        quality: list[str] = []
        try:
            predictions = self._observe(arm, "predict", run)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._record(arm, "predict", v, start, request_id=request, inputs=rows, quality=quality, error=error)
            raise
        self._record(arm, "predict", v, start, request_id=request, inputs=rows, outputs=predictions, quality=quality)
        return {"predictions": predictions, "variant": variant, "deploy_id": self.deploy_id, **v.versions(),
                "request_id": request}  # fmt: skip

    def answer(
        self, variant: str, name: str, variables: dict[str, Any], arm: str | None = None, request: str | None = None
    ) -> dict[str, Any]:
        v = self.variants[variant]
        arm = arm or variant
        request = request_id(request)
        if name not in v.prompts:
            raise KeyError(name)
        prompt = v.prompts[name]
        version = v.locked.prompts[name].version
        start = time.perf_counter()
        quality: list[str] = []
        hook = self.hooks.answer

        def run() -> Any:
            v.faults.apply()
            if hook:
                reply = hook(prompt, variables, self.llm())
            else:
                reply = self.llm().chat(prompt.render(variables), prompt.model_settings, prompt.response_format)
            self.metrics.tokens.labels(arm, "input").inc(reply.input_tokens)
            self.metrics.tokens.labels(arm, "output").inc(reply.output_tokens)
            for kind in quality_failures(reply.text, prompt.response_format, self.check_pii):
                self.metrics.quality.labels(arm, kind).inc()
                quality.append(kind)
            if REFUSAL.search(reply.text):
                quality.append("refusal")  # logged for the monitor; not a canary failure
            return reply

        missing = sorted(set(prompt.input_variables) - set(variables))
        if missing:  # the client's mistake: 422, naming each variable
            raise Rejected(422, [{"loc": ["body", "variables", m], "msg": f"prompt {name} needs this variable",
                                  "type": "missing"} for m in missing])  # fmt: skip
        logged = {"prompt_name": name, "prompt_version": version, "inputs": variables, "request_id": request}
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
            "prompt": {"name": name, "version": version},
            "tokens": {"input": reply.input_tokens, "output": reply.output_tokens},
            "request_id": request,
        }

    def mirror(self, call: str, *args: Any, request: str | None = None) -> None:
        """Answer with the canary too, in the background, as variant "shadow" (logged under the same
        request id); the answer is dropped."""
        if self.shadow is None:
            return
        method = self.predict if call == "predict" else self.answer

        def run() -> None:
            with contextlib.suppress(Exception):  # counted in the shadow's metrics, never reaches a client
                method("canary", *args, arm="shadow", request=request)

        self.shadow.submit(run)
