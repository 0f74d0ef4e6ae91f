"""Serving a project's app: built from its params, its deploy lock and its hooks; served by uvicorn
in the foreground (`lockstep serve`) or in a background thread on loopback (staging, rehearsals).

    lockstep serve [--port PORT] [--weight W] [--inject latency=300ms,errors=5%]
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from lockstep.config import Params
from lockstep.deploy_lock import read_lock
from lockstep.hooks import load_hooks
from lockstep.serve.http import ADMIN_TOKEN_ENV, create_app
from lockstep.serve.service import Service

INJECT_ENV = "LOCKSTEP_INJECT"


def build(
    params: Params,
    lock_file: Path | None = None,
    weight: float = 0.0,
    inject: str | None = None,
    admin_token: str | None = None,
    log: bool = True,
) -> tuple[Any, Service]:
    """The app of a project: its params, its lock, its hooks (checked before any model loads); the admin
    token, else $LOCKSTEP_ADMIN_TOKEN. log=False: no inference log (staging and rehearsals keep their
    traffic out of production's)."""
    deploy = params.deploy
    hooks = load_hooks(deploy.hooks)
    lock = read_lock(lock_file or deploy.lock_file)
    service = Service(lock, params.llm, deploy, weight, inject, hooks, monitor=params.monitor if log else None)
    return create_app(service, admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None), service


def serve(params: Params, host: str, port: int, lock_file: Path | None, weight: float, inject: str | None) -> None:
    """Serve until stopped; port 0 takes a free port, and the line printed names the one bound."""
    import socket

    import uvicorn

    app, service = build(params, lock_file, weight, inject or os.environ.get(INJECT_ENV))
    handler = logging.StreamHandler()  # stderr: the access log (conf/deploy access_log) and failures' causes
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("lockstep").addHandler(handler)
    logging.getLogger("lockstep").setLevel(logging.INFO)
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
