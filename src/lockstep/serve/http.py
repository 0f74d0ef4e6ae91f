"""The service over HTTP (FastAPI): the endpoints, their status codes and headers.

    GET  /health               the deploy id, the canary weight and each variant's versions
    POST /v1/predict           {"rows": [{feature: value, ...}, ...]} -> {"predictions": [...]}
    POST /v1/prompts/{name}    {"variables": {...}} -> {"answer": "..."}
    GET  /metrics              requests, errors, latency, tokens, quality failures, per variant
    PUT  /admin/weight         {"weight": 25}; only with LOCKSTEP_ADMIN_TOKEN set, in X-Admin-Token

Every answer names the variant and versions that produced it (body and X-Lockstep-* headers) and
its request id (`request_id`, header X-Request-ID): the client's X-Request-ID when well-formed
(letters, digits, `. _ : -`, at most 128), else a new one. The inference log records it; labels
that arrive later are joined to the predictions by it (docs/monitoring.md).
A client's mistake is 4xx with FastAPI's `{"detail": [{"loc", "msg", "type"}]}` and nothing of the
input echoed back (422: a field, 413: a body over conf/deploy `max_body_bytes` or more rows than
`max_rows`), counted apart from the variants' errors. A failure of the service is 500 with no
internals in the body (its cause goes to the service's log). /docs and /openapi.json are served
only with conf/deploy `api_docs: true`; `access_log` writes one line per request to stderr.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lockstep.config import StageError
from lockstep.serve.service import Service, request_id
from lockstep.serve.validate import Rejected

ADMIN_TOKEN_ENV = "LOCKSTEP_ADMIN_TOKEN"
log = logging.getLogger("lockstep.serve")
logging.getLogger("lockstep").addHandler(logging.NullHandler())  # quiet unless `lockstep serve` logs (server.py)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 before the app reads it."""

    def __init__(self, app: Any, limit: int, rejected: Any) -> None:
        self.app, self.limit, self.rejected = app, limit, rejected

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(scope, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await self.refuse(scope, send)

    async def refuse(self, scope: dict, send: Any) -> None:
        self.rejected.labels(endpoint_of(scope["path"]), "413").inc()
        msg = f"the request body is over {self.limit} bytes (conf/deploy max_body_bytes); send fewer rows per request"
        await JSONResponse({"detail": [{"loc": ["body"], "msg": msg, "type": "too_long"}]}, 413)(scope, None, send)


class AccessLog:
    """ASGI middleware: one line per request (method, path, status, variant, milliseconds) on the
    logger lockstep.access; a plain ASGI wrapper, not Starlette's BaseHTTPMiddleware, which costs
    a task and a stream per request."""

    def __init__(self, app: Any) -> None:
        self.app, self.log = app, logging.getLogger("lockstep.access")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        start, seen = time.perf_counter(), {"status": 0, "variant": "-"}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = dict(message.get("headers") or [])
                seen["variant"] = headers.get(b"x-lockstep-variant", b"-").decode()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.log.info("%s %s %s %s %.1f ms", scope["method"], scope["path"], seen["status"], seen["variant"], ms)


class BodyTooLarge(Exception):
    pass


def endpoint_of(path: str) -> str:
    return "predict" if path == "/v1/predict" else "prompt" if path.startswith("/v1/prompts/") else "other"


def create_app(service: Service, admin_token: str | None = None) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    deploy = service.deploy
    docs = {} if deploy.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="lockstep", version=service.deploy_id, **docs)
    app.state.service = service
    rejected = service.metrics.rejected
    app.add_middleware(BodyLimit, limit=deploy.max_body_bytes, rejected=rejected)

    if deploy.access_log:
        app.add_middleware(AccessLog)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without the `input` it would echo back (it may be anything the client sent)."""
        rejected.labels(endpoint_of(request.url.path), "422").inc()
        detail = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": detail}, 422)

    def respond(body: dict[str, Any]) -> JSONResponse:
        headers = {"X-Lockstep-Variant": body["variant"], "X-Lockstep-Deploy": service.deploy_id,
                   "X-Request-ID": body["request_id"]}  # fmt: skip
        return JSONResponse(body, headers=headers)

    def refused(endpoint: str, exc: Rejected) -> JSONResponse:
        rejected.labels(endpoint, str(exc.status)).inc()
        return JSONResponse({"detail": exc.detail}, exc.status)

    def failed(variant: str, endpoint: str, exc: Exception, request: str) -> HTTPException:
        log.error("%s failed on variant %s: %s: %s", endpoint, variant, type(exc).__name__, exc, exc_info=exc)
        detail = {"error": "the service failed to answer; its log has the cause", "variant": variant,
                  "deploy_id": service.deploy_id}  # fmt: skip
        return HTTPException(500, detail, headers={"X-Lockstep-Variant": variant, "X-Request-ID": request})

    @app.get("/health")
    def health() -> dict[str, Any]:
        versions = {name: v.versions() for name, v in service.variants.items()}
        return {"status": "ok", "deploy_id": service.deploy_id, "weight": service.weight, "variants": versions}

    @app.post("/v1/predict")
    def predict(
        rows: Annotated[list[Any], Body(embed=True)],
        x_request_key: Annotated[str | None, Header()] = None,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        variant = service.choose(x_request_key)
        request = request_id(x_request_id)
        try:
            body = service.predict(variant, rows, request=request)
        except Rejected as exc:
            return refused("predict", exc)
        except StageError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            raise failed(variant, "predict", exc, request) from None
        if variant == "stable":
            service.mirror("predict", rows, request=request)
        return respond(body)

    @app.post("/v1/prompts/{name}")
    def prompt(
        name: str,
        variables: Annotated[dict[str, Any], Body(embed=True)],
        x_request_key: Annotated[str | None, Header()] = None,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        variant = service.choose(x_request_key)
        request = request_id(x_request_id)
        try:
            body = service.answer(variant, name, variables, request=request)
        except KeyError:
            raise HTTPException(404, f"no prompt {name} in this deployment") from None
        except Rejected as exc:
            return refused("prompt", exc)
        except StageError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            raise failed(variant, "prompt", exc, request) from None
        if variant == "stable":
            service.mirror("answer", name, variables, request=request)
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
