"""The deploy commands of the `lockstep` CLI; each imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path


def _needs_serve_extra() -> None:
    from importlib.util import find_spec

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client", "jsonschema") if find_spec(m) is None]
    if missing:
        from lockstep.config import StageError

        raise StageError(f"{', '.join(missing)} not installed; install lockstep-mlops[serve] (make setup)")


def _lock(args: argparse.Namespace) -> int:
    from lockstep.serve import lock

    if args.action == "lock":
        return lock.write_lock(args.params, args.out)
    if args.action == "wheels":
        return lock.toolkit_wheel(Path("wheels"))
    if args.action == "manifests":
        from lockstep.serve import k8s

        if not args.image:
            from lockstep.config import StageError

            raise StageError("deploy manifests: name the image, e.g. --image ghcr.io/org/name:tag --digest sha256:...")
        return k8s.write(args.params, args.image, args.digest, args.dir, args.out)
    return lock.show(args.params, args.out, args.action)


def _serve(args: argparse.Namespace) -> int:
    _needs_serve_extra()
    from lockstep.serve.app import serve

    port = args.port if args.port is not None else int(os.environ.get("PORT") or 8000)
    return serve(args.params, args.host, port, args.lock, args.weight, args.inject)


def _staging(args: argparse.Namespace) -> int:
    _needs_serve_extra()
    from lockstep.serve.staging import staging

    return staging(args.params, args.lock)


def _canary(args: argparse.Namespace) -> int:
    _needs_serve_extra()
    from lockstep.serve.canary import canary

    return canary(args.params, args.url, args.lock)


def _rehearsal(args: argparse.Namespace) -> int:
    _needs_serve_extra()
    from lockstep.serve.canary import rehearsal

    return rehearsal(args.params, args.lock, args.inject)


def _monitor(args: argparse.Namespace) -> int:
    from lockstep.monitor.command import monitor

    return monitor(args.params, registry=not args.no_registry)


def _retrain(args: argparse.Namespace) -> int:
    from lockstep.monitor import retrain

    if args.action == "branch":
        return retrain.branch(args.branch, args.request, args.body)
    return retrain.gitlab_mr(args.body)


def _monitor_rehearsal(args: argparse.Namespace) -> int:
    _needs_serve_extra()
    from lockstep.monitor.rehearsal import rehearsal

    return rehearsal(args.params, args.shift, args.lock)


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    lock_help = "deploy lock file (default: conf/deploy lock_file, deploy.lock.json)"
    sub = command("deploy", _lock, "resolve champion and challenger to numeric versions in the deploy lock")
    sub.add_argument(
        "action",
        choices=["lock", "id", "build-args", "wheels", "manifests"],
        help="lock: write the lock file; id, build-args: print its deploy id, or docker build's --build-arg"
        " options; wheels: the toolkit's wheel into wheels/ when it is installed from a local clone;"
        " manifests: Kubernetes manifests (Argo Rollouts, KServe) into deploy/k8s/",
    )
    sub.add_argument("--out", type=Path, default=None, help=lock_help)
    sub.add_argument(
        "--image", default=os.environ.get("IMAGE") or None, help="manifests: the image, e.g. ghcr.io/org/name:tag"
    )
    sub.add_argument("--digest", default=os.environ.get("DIGEST") or None, help="manifests: its digest, sha256:...")
    sub.add_argument("--dir", type=Path, default=None, help="manifests: where to write them (default: deploy/k8s)")
    sub = command("serve", _serve, "serve the locked versions over HTTP (FastAPI on uvicorn)")
    sub.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address (default: $HOST, loopback)")
    sub.add_argument("--port", type=int, default=None, help="port (default: $PORT, else 8000)")
    sub.add_argument("--lock", type=Path, default=None, help=lock_help)
    sub.add_argument("--weight", type=float, default=float(os.environ.get("LOCKSTEP_CANARY_WEIGHT") or 0))
    sub.add_argument("--inject", default=None, help="faults in the canary arm: latency=300ms,errors=5%%")
    sub = command("staging", _staging, "evaluate the locked canary over HTTP on the golden sets; tag the result")
    sub.add_argument("--lock", type=Path, default=None, help=lock_help)
    sub = command("canary", _canary, "step the canary's weight on a running service; promote or roll back")
    sub.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    sub.add_argument("--lock", type=Path, default=None, help=lock_help)
    sub = command("canary-rehearsal", _rehearsal, "serve on loopback, drive traffic, run the canary to its decision")
    sub.add_argument("--lock", type=Path, default=None, help=lock_help)
    sub.add_argument("--inject", default=os.environ.get("INJECT") or None, help="latency=300ms or errors=5%%")
    sub = command("monitor", _monitor, "judge the inference log's windows for drift; tag the served versions;"
                  " exit 4 with reports/monitor/retrain.json when retraining is due")  # fmt: skip
    sub.add_argument("--no-registry", action="store_true", help="leave the registry's tags alone")
    sub = command("retrain", _retrain, "commit a reproduced pipeline on a new branch for review (branch); push it"
                  " and open its GitLab merge request (gitlab-mr)", params=False)  # fmt: skip
    sub.add_argument("action", choices=["branch", "gitlab-mr"], help="what to do")
    sub.add_argument("--branch", default=None, help="branch name (default: $RETRAIN_BRANCH, else retrain/<UTC time>)")
    sub.add_argument("--request", type=Path, default=Path("reports/monitor/retrain.json"), help="the monitor's request")
    sub.add_argument("--body", type=Path, default=Path("reports/monitor/retrain-pr.md"), help="description file")
    sub = command("monitor-rehearsal", _monitor_rehearsal, "serve on loopback, send windows of test-split traffic"
                  " (shifted with --shift), judge them as monitor does")  # fmt: skip
    sub.add_argument("--shift", default=os.environ.get("SHIFT") or None, help="FEATURE:+Nsd, e.g. f1:+2sd")
    sub.add_argument("--lock", type=Path, default=None, help=lock_help)
