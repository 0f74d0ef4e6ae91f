"""The service over HTTP (FastAPI): the endpoints, their status codes and headers.

    GET  /health               the deploy id, the canary weight and each variant's versions
    POST /v1/predict           {"rows": [{feature: value, ...}, ...]} -> {"predictions": [...]}
    POST /v1/prompts/{name}    {"variables": {...}} -> {"answer": "..."}
    GET  /metrics              requests, errors, latency, tokens, quality failures, per variant
    PUT  /admin/weight         {"weight": 25}; only with LOCKSTEP_ADMIN_TOKEN set, in X-Admin-Token

Every answer names the variant and versions that produced it (body and X-Lockstep-* headers).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse

from lockstep.config import StageError
from lockstep.serve.service import Service

ADMIN_TOKEN_ENV = "LOCKSTEP_ADMIN_TOKEN"


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
