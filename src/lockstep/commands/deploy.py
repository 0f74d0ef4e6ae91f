"""`lockstep deploy lock|id|build-args|wheels|manifests`: resolve champion and challenger to numeric
versions in the deploy lock, and what the image and the cluster are built from."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lockstep.commands import LOCK_HELP, ExitCode, add_params, load_params

if TYPE_CHECKING:
    from lockstep.config import Params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "resolve champion and challenger to numeric versions in the deploy lock"
    sub = subparsers.add_parser("deploy", help=help, description=help)
    add_params(sub)
    sub.add_argument(
        "action",
        choices=["lock", "id", "build-args", "wheels", "manifests"],
        help="lock: write the lock file; id, build-args: print its deploy id, or docker build's --build-arg"
        " options; wheels: the toolkit's wheel into wheels/ when it is installed from a local clone;"
        " manifests: Kubernetes manifests (Argo Rollouts, KServe) into deploy/k8s/",
    )
    sub.add_argument("--out", type=Path, default=None, help=LOCK_HELP)
    sub.add_argument(
        "--image", default=os.environ.get("IMAGE") or None, help="manifests: the image, e.g. ghcr.io/org/name:tag"
    )
    sub.add_argument("--digest", default=os.environ.get("DIGEST") or None, help="manifests: its digest, sha256:...")
    sub.add_argument("--dir", type=Path, default=None, help="manifests: where to write them (default: deploy/k8s)")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "wheels":
        from lockstep.serve.image import toolkit_wheel

        out = Path("wheels")
        wheels = toolkit_wheel(out)
        if wheels:
            print(f"deploy wheels: {', '.join(p.name for p in wheels)} -> {out}")
        return ExitCode.OK
    settings = load_params(args)
    if args.action == "lock":
        return _lock(settings, args.out or settings.deploy.lock_file)
    if args.action == "manifests":
        return _manifests(settings, args)
    from lockstep.deploy_lock import read_lock

    lock = read_lock(args.out or settings.deploy.lock_file)
    if args.action == "id":
        print(lock.deploy_id)
    else:
        from lockstep.serve.image import build_args

        print(" ".join(f"--build-arg {k}={v}" for k, v in build_args(lock).items()))
    return ExitCode.OK


def _lock(settings: Params, path: Path) -> int:
    from lockstep.deploy_lock import write_lock
    from lockstep.serve.resolve import make_lock

    lock = make_lock(settings)
    write_lock(path, lock)
    for variant, v in lock.variants.items():
        names = [v.model.uri, *(p.uri for p in v.prompts.values())]
        print(f"deploy lock: {variant} (@{v.model.alias}) -> {', '.join(names)}")
    print(f"deploy lock: {path} (deploy_id {lock.deploy_id})")
    return ExitCode.OK


def _manifests(settings: Params, args: argparse.Namespace) -> int:
    from lockstep.config import StageError
    from lockstep.serve import k8s

    if not args.image:
        raise StageError("deploy manifests: name the image, e.g. --image ghcr.io/org/name:tag --digest sha256:...")
    ref = k8s.image_ref(args.image, args.digest)
    if "@sha256:" not in ref:
        print(f"manifests: {ref} is a tag, not a digest: pass --digest to pin what the cluster pulls")
    written = k8s.write(settings, ref, args.dir, args.out)
    for file, docs in written.items():
        print(f"manifests: {file} ({', '.join(docs)})")
    return ExitCode.OK
