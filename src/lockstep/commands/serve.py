"""`lockstep serve`: the locked versions over HTTP (FastAPI on uvicorn), until stopped."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lockstep.commands import LOCK_HELP, ExitCode, add_params, load_params, needs_serve_extra


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "serve the locked versions over HTTP (FastAPI on uvicorn)"
    sub = subparsers.add_parser("serve", help=help, description=help)
    add_params(sub)
    sub.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address (default: $HOST, loopback)")
    sub.add_argument("--port", type=int, default=None, help="port (default: $PORT, else 8000)")
    sub.add_argument("--lock", type=Path, default=None, help=LOCK_HELP)
    sub.add_argument("--weight", type=float, default=float(os.environ.get("LOCKSTEP_CANARY_WEIGHT") or 0))
    sub.add_argument("--inject", default=None, help="faults in the canary arm: latency=300ms,errors=5%%")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    needs_serve_extra()
    from lockstep.serve.server import serve

    port = args.port if args.port is not None else int(os.environ.get("PORT") or 8000)
    serve(load_params(args), args.host, port, args.lock, args.weight, args.inject)
    return ExitCode.OK
