"""Kubernetes manifests for the locked service, rendered from conf/deploy and the deploy lock.

    lockstep deploy manifests --image REGISTRY/NAME[:TAG] [--digest sha256:...]   # make manifests

Writes two alternatives to deploy/k8s/ (conf/deploy kubernetes), one source of truth with the
toolkit's own controller (`lockstep canary`):

- argo-rollouts.yaml: a Rollout whose canary steps are conf/deploy `steps` (setWeight, a pause of
  one window, an analysis), the stable and canary Services, and two AnalysisTemplates on the
  service's own /metrics: `<name>-sla` runs in the background for the whole rollout (canary p95
  above sla_p95_ms or error rate above max_error_rate: abort at once), `<name>-compare` runs at
  each step below 100 % (p95 against stable's, error and quality-failure rates against stable's).
- kserve.yaml: an InferenceService with the image as a custom predictor and canaryTrafficPercent
  set to the first step (honoured in Serverless mode only; no analysis of its own).

Too few samples: every query ends in `or on() vector(NaN)` and returns NaN unless both arms had
min_samples requests in the window (Argo aborts a run on an empty result). A NaN comparison is
neither success nor failure, so Argo counts it inconclusive: the step holds (inconclusiveLimit
max_windows) and never advances on no data. A NaN in the background SLA check is no breach.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lockstep import metric_names as names
from lockstep.config import Params, StageError
from lockstep.deploy_lock import DeployLock, read_lock
from lockstep.io import write_atomic
from lockstep.settings import DeployConfig

OUT_DIR = Path("deploy/k8s")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?"  # registry host[:port], or the first path part
    r"(?:/[a-z0-9]+(?:[._/-][a-z0-9]+)*)*"  # the repository path, lowercase
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"  # :tag, @digest
)
HASH_LABEL = "rollouts_pod_template_hash"  # the pod label rollouts-pod-template-hash, as Prometheus maps it


def image_ref(image: str, digest: str | None) -> str:
    """REGISTRY/NAME@sha256:... when a digest is given (the tag dropped: the digest is what runs)."""
    if not IMAGE.match(image):
        raise StageError(f"--image {image!r}: not an image reference like ghcr.io/org/name:tag (lowercase)")
    if digest is None:
        return image
    if not DIGEST.match(digest):
        raise StageError(f"--digest {digest!r}: not sha256:<64 hex digits>; take it from `docker push` or the registry")
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return f"{name}@{digest}"


def dns_name(text: str) -> str:
    """A DNS-1035 label (Service names): lowercase letters, digits and dashes, a letter first."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:40].rstrip("-")
    if not name:
        raise StageError(f"conf/deploy kubernetes.name: cannot derive a DNS name from {text!r}; set one")
    return name


def whole_percents(steps: list[float]) -> list[int]:
    for step in steps:
        if step != int(step) or not 0 < step <= 100:
            raise StageError(
                f"conf/deploy steps: {step:g} is not a whole percent in 1..100;"
                " Argo Rollouts and KServe take whole percents"
            )
    return [int(s) for s in steps]


# ---- PromQL on the service's own metrics, one arm of the Rollout at a time ----------------------


def _sel(arm: str) -> str:
    return f'{HASH_LABEL}="{{{{args.{arm}-hash}}}}",variant!="shadow"'


def _sum(metric: str, arm: str, window: str) -> str:
    return f"sum(increase({metric}{{{_sel(arm)}}}[{window}]))"


def p95(arm: str, window: str) -> str:
    buckets = f"increase({names.bucket(names.LATENCY)}{{{_sel(arm)}}}[{window}])"
    return f"histogram_quantile(0.95, sum by (le) ({buckets}))"


def rate_of(metric: str, arm: str, window: str) -> str:
    """A share of the arm's requests; 0 when the counter has no series yet (nothing failed)."""
    return f"(({_sum(metric, arm, window)} or on() vector(0)) / {_sum(names.total(names.REQUESTS), arm, window)})"


def guarded(expr: str, arms: list[str], window: str, min_samples: int) -> str:
    """expr when every arm had min_samples requests in the window, else NaN (never an empty result)."""
    enough = " and on() ".join(f"({_sum(names.total(names.REQUESTS), a, window)} >= {min_samples})" for a in arms)
    return f"(({expr}) and on() {enough}) or on() vector(NaN)"


def _metric(name: str, query: str, prometheus: str, window: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "interval": window,
        **extra,
        "provider": {"prometheus": {"address": prometheus, "query": query}},
    }


def analysis_templates(name: str, deploy: DeployConfig) -> list[dict[str, Any]]:
    th, k8s = deploy.thresholds, deploy.kubernetes
    window = f"{int(deploy.window_s)}s"
    n = th.min_samples
    sla_s, slack_s = th.sla_p95_ms / 1000, th.p95_slack_ms / 1000
    hard = {"failureLimit": 0}  # one breach aborts the rollout (weight back to 0)
    no_breach = "isNaN(result[0]) || result[0] <= {0}"  # too few samples: no breach seen
    breach = "!isNaN(result[0]) && result[0] > {0}"
    sla = [
        _metric("p95-latency-sla", guarded(p95("canary", window), ["canary"], window, n), k8s.prometheus,
                window, successCondition=no_breach.format(sla_s), failureCondition=breach.format(sla_s), **hard),
        _metric("error-rate-max", guarded(rate_of(names.total(names.ERRORS), "canary", window), ["canary"], window, n),
                k8s.prometheus, window, successCondition=no_breach.format(th.max_error_rate),
                failureCondition=breach.format(th.max_error_rate), **hard),
    ]  # fmt: skip
    # A step's analysis: the first passing window advances (consecutiveSuccessLimit 1); failure_limit
    # failed windows abort (Argo fails a run when failures exceed failureLimit, hence the - 1);
    # NaN (too few samples) is inconclusive and holds the step, up to max_windows windows, after
    # which Argo pauses for a person as `lockstep canary` exits 3.
    step = {
        "count": deploy.max_windows,
        "consecutiveSuccessLimit": 1,
        "failureLimit": deploy.failure_limit - 1,
        "inconclusiveLimit": deploy.max_windows,
    }
    passes = "!isNaN(result[0]) && result[0] <= {0}"
    fails = "!isNaN(result[0]) && result[0] > {0}"
    both = ["canary", "stable"]
    stable_p95 = p95("stable", window)
    allowed = f"(({stable_p95} * {th.max_p95_ratio:g} > {stable_p95} + {slack_s:g}) or ({stable_p95} + {slack_s:g}))"
    compare_queries = {
        "p95-vs-stable": (f"{p95('canary', window)} - {allowed}", 0),
        "error-rate-vs-stable": (
            f"{rate_of(names.total(names.ERRORS), 'canary', window)}"
            f" - {rate_of(names.total(names.ERRORS), 'stable', window)}",
            th.max_error_rate_increase,
        ),
        "quality-vs-stable": (
            f"{rate_of(names.total(names.QUALITY_FAILURES), 'canary', window)}"
            f" - {rate_of(names.total(names.QUALITY_FAILURES), 'stable', window)}",
            th.max_quality_failure_increase,
        ),
    }
    compare = [
        _metric(metric, guarded(query, both, window, n), k8s.prometheus, window,
                successCondition=passes.format(limit), failureCondition=fails.format(limit), **step)
        for metric, (query, limit) in compare_queries.items()
    ]  # fmt: skip
    args = [{"name": "canary-hash"}, {"name": "stable-hash"}]
    return [
        _template(f"{name}-sla", [{"name": "canary-hash"}], sla),
        _template(f"{name}-compare", args, compare),
    ]


def _template(name: str, args: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"args": args, "metrics": metrics},
    }


# ---- the pod --------------------------------------------------------------------------------------


def container(image: str, deploy: DeployConfig, log_dir: str | None, name: str = "service") -> dict[str, Any]:
    k8s = deploy.kubernetes
    probe = {"httpGet": {"path": "/health", "port": k8s.port}}
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if log_dir:
        mounts.append({"name": "inference-log", "mountPath": f"/app/{log_dir}"})
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": k8s.port, "protocol": "TCP"}],
        "env": [{"name": "HOST", "value": "0.0.0.0"}, {"name": "PORT", "value": str(k8s.port)}],
        # Loading the locked model from the registry can take a while: up to 2 minutes before liveness counts
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 24},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "resources": {"requests": k8s.requests.model_dump(), "limits": k8s.limits.model_dump()},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if k8s.secret:
        spec["envFrom"] = [{"secretRef": {"name": k8s.secret}}]
    return spec


def pod_spec(image: str, deploy: DeployConfig, log_dir: str | None, name: str = "service") -> dict[str, Any]:
    volumes = [{"name": "tmp", "emptyDir": {}}]
    if log_dir:
        volumes.append({"name": "inference-log", "emptyDir": {}})  # replace with a volume that outlives the pod
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,  # the image's USER
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(image, deploy, log_dir, name)],
        "volumes": volumes,
    }


def _annotations(lock: DeployLock) -> dict[str, str]:
    variants = lock.variants
    return {
        "lockstep.io/deploy-id": lock.deploy_id,
        "lockstep.io/git-commit": str(lock.git_commit),
        "lockstep.io/model-versions": ",".join(f"{v}:{x.model.name}/{x.model.version}" for v, x in variants.items()),
        "lockstep.io/prompt-versions": ",".join(
            f"{v}:{p.name}/{p.version}" for v, x in variants.items() for p in x.prompts.values()
        )
        or "none",
    }


# ---- the manifests --------------------------------------------------------------------------------


def argo_rollouts(name: str, image: str, deploy: DeployConfig, lock: DeployLock, log_dir: str | None) -> list:
    window = f"{int(deploy.window_s)}s"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "lockstep"}
    selector = {"app.kubernetes.io/name": name}
    steps: list[dict[str, Any]] = []
    args = [
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
    ]
    for weight in whole_percents(deploy.steps):
        steps += [{"setWeight": weight}, {"pause": {"duration": window}}]
        if weight < 100:  # at 100 % stable has no traffic to compare with: the background SLA check watches
            steps.append({"analysis": {"templates": [{"templateName": f"{name}-compare"}], "args": args}})
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": svc, "labels": labels},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }
        for svc in (name, f"{name}-canary")
    ]
    template_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(deploy.kubernetes.port),
        "prometheus.io/path": "/metrics",
    }
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": labels, "annotations": _annotations(lock)},
        "spec": {
            "replicas": deploy.kubernetes.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": template_annotations},
                "spec": pod_spec(image, deploy, log_dir),
            },
            "strategy": {
                "canary": {
                    "stableService": name,
                    "canaryService": f"{name}-canary",
                    "analysis": {"templates": [{"templateName": f"{name}-sla"}], "args": args[:1]},
                    "steps": steps,
                }
            },
        },
    }
    return [*services, *analysis_templates(name, deploy), rollout]


def kserve(name: str, image: str, deploy: DeployConfig, lock: DeployLock, log_dir: str | None) -> list:
    pod = pod_spec(image, deploy, log_dir, name="kserve-container")  # KServe's name for a custom predictor
    pod.pop("automountServiceAccountToken")
    predictor = {
        "minReplicas": deploy.kubernetes.replicas,
        "canaryTrafficPercent": whole_percents(deploy.steps)[0],  # Serverless mode only (kserve#5335)
        **pod,
    }
    annotations = {**_annotations(lock), "serving.kserve.io/deploymentMode": "Serverless"}
    return [
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}, "annotations": annotations},
            "spec": {"predictor": predictor},
        }
    ]


def render(params: Params, image: str, lock_file: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """{file name: its documents}, from settings.yaml's deploy (and monitor) sections and the lock."""
    deploy = params.deploy
    lock = read_lock(lock_file or deploy.lock_file)
    model = params.registration.model_name if params.registration else None
    name = deploy.kubernetes.name or dns_name(model or lock.stable.model.name)
    monitor = params.monitor
    log_dir = None
    if monitor is not None and "://" not in monitor.log:  # a SQLite file in the pod (a database URL needs no volume)
        log = Path(monitor.log)
        if log.is_absolute() or ".." in log.parts:
            raise StageError(f"conf/monitor log: {log} must be a path inside the project for the image")
        log_dir = log.parent.as_posix() if log.parent != Path(".") else None
    return {
        "argo-rollouts.yaml": argo_rollouts(name, image, deploy, lock, log_dir),
        "kserve.yaml": kserve(name, image, deploy, lock, log_dir),
    }


def write(params: Params, ref: str, out: Path | None, lock_file: Path | None) -> dict[Path, list[str]]:
    """The manifests written for the image ref (lockstep deploy manifests): {file: kind/name of each document}."""
    import yaml

    rendered = render(params, ref, lock_file)  # everything checked before anything is written
    out = out or OUT_DIR
    header = "# Generated by `lockstep deploy manifests` from conf/deploy and the deploy lock: edit those, not this.\n"
    written = {}
    for file, docs in rendered.items():
        text = header + yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=200)
        write_atomic(out / file, text)  # a manifest is whole or untouched
        written[out / file] = [d["kind"] + "/" + d["metadata"]["name"] for d in docs]
    return written
