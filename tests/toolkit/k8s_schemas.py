"""Validate Kubernetes documents offline against official schemas, with jsonschema.

Core kinds (Service) use the JSON schemas generated from the Kubernetes OpenAPI that the
kubernetes-validate package ships (strict: unknown fields are errors). Custom resources use the
openAPIV3Schema of the projects' own CRDs, as released (Argo Rollouts v1.9.1, KServe v0.20.0):
the directory LOCKSTEP_K8S_SCHEMAS, else `shared/k8s-schemas` beside the repository, holds them with
their licences and a README saying where each came from. The API server prunes or rejects (with
`kubectl apply --validate=strict`, kubectl's default) fields a structural schema does not
declare, so a declared object without x-kubernetes-preserve-unknown-fields is closed here.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

KUBERNETES_VERSION = "1.33.0"
CRDS = {
    ("argoproj.io/v1alpha1", "Rollout"): "argo-rollouts-v1.9.1/rollout-crd.yaml",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "argo-rollouts-v1.9.1/analysis-template-crd.yaml",
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-v0.20.0/serving.kserve.io_inferenceservices.yaml",
}


def schema_dir() -> Path:
    """Where the released CRD schemas are; the tests that need them skip, saying so, when they are absent
    (they are upstream files, not this repository's: see the README beside them)."""
    import pytest

    root = Path(__file__).resolve().parents[2]
    where = Path(os.environ.get("LOCKSTEP_K8S_SCHEMAS") or root.parent / "shared" / "k8s-schemas")
    missing = [f for f in CRDS.values() if not (where / f).is_file()]
    if missing:
        pytest.skip(
            f"CRD schemas missing in {where}: {', '.join(missing)}; set LOCKSTEP_K8S_SCHEMAS to a directory"
            " holding manifests/crds/*.yaml of Argo Rollouts v1.9.1 and"
            " config/crd/full/*inferenceservices.yaml of KServe v0.20.0"
        )
    return where


def strict(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema: nullable allows null, undeclared fields are errors."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not") else v
           for k, v in schema.items()}  # fmt: skip
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Validator:
    text = (schema_dir() / CRDS[api_version, kind]).read_text(encoding="utf-8")
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 1.9 MB of KServe CRD
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or kubernetes_validate.ValidationError) when doc is invalid."""
    if (doc.get("apiVersion"), doc.get("kind")) in CRDS:
        crd_validator(doc["apiVersion"], doc["kind"]).validate(doc)
        return
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
