"""`lockstep canary-rehearsal [--inject latency=300ms|errors=5%]` (make canary-rehearsal): stable and
canary served on loopback, synthetic traffic from the test split and the golden sets, and the
canary controller run to its decision with conf/deploy rehearsal_window_s windows. The decisions
go to reports/canary-rehearsal.jsonl; the registry is left untouched."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockstep.config import Params, StageError

RECORD = Path("reports/canary-rehearsal.jsonl")
PREDICT_SENDERS = 8  # concurrent senders of the test split's rows (of the prompts, when there is no model)
PROMPT_SENDERS = 1  # of the golden sets' cases, beside the rows


def synthetic_requests(params: Params) -> list[tuple[str, dict[str, Any]]]:
    """Rehearsal traffic: the test split's rows one by one, and the golden sets' cases."""
    import pandas as pd

    from lockstep.prompts import load_golden, load_prompt_file

    requests: list[tuple[str, dict[str, Any]]] = []
    paths, data = params.paths, params.data
    if paths is not None and data is not None:
        if paths.test.exists():
            rows = pd.read_parquet(paths.test).drop(columns=[data.target])
            requests += [("/v1/predict", {"rows": [r]}) for r in json.loads(rows.to_json(orient="records"))]
        if params.prompts is not None and paths.prompts and paths.golden:
            for name in params.prompts.names:
                cases = load_golden(paths.golden_file(name), load_prompt_file(paths.prompt_file(name)))
                requests += [(f"/v1/prompts/{name}", {"variables": c["inputs"]}) for c in cases]
    if not requests:
        raise StageError("canary-rehearsal: no test split and no golden sets to draw traffic from; run make repro")
    return requests


def traffic(url: str, requests: list[tuple[str, Any]], stop: threading.Event, seed: int, counts: dict) -> None:
    """Send requests round and round until stop, each under its own key (one user each)."""
    from lockstep.serve.client import Client

    client, i = Client(url), seed
    while not stop.is_set():
        path, body = requests[i % len(requests)]
        try:
            status = client.post(path, body, key=f"rehearsal-{seed}-{i}")[0]
        except OSError:
            status = 0
        counts[status] = counts.get(status, 0) + 1
        i += 1
    client.close()


def until_samples(client: Any, min_samples: int, longest: int = 6) -> Any:
    """A rehearsal's window: rehearsal_window_s, then on (up to `longest` times as long) until both arms
    have min_samples requests, so how fast this machine sends does not decide the verdict. (At 100 %
    stable has none: the canary's alone then.) Production windows are fixed: conf/deploy window_s."""
    import time

    from lockstep.serve.canary import scrape, window_stats

    def wait(seconds: float) -> None:
        start = scrape(client)
        time.sleep(seconds)
        deadline = time.monotonic() + seconds * (longest - 1)
        while time.monotonic() < deadline:
            now = scrape(client)
            canary, stable = (window_stats(start, now, arm)["requests"] for arm in ("canary", "stable"))
            if canary >= min_samples and (stable >= min_samples or stable == 0):
                return
            time.sleep(0.2)

    return wait


class DryRun:
    """A rehearsal decides, but moves no alias and tags nothing."""

    def __init__(self, say: Any = print) -> None:
        self.say = say

    def promote(self) -> None:
        self.say("canary-rehearsal: would move champion to the canary's versions")

    def rollback(self, reasons: list[str]) -> None:
        self.say("canary-rehearsal: would tag the canary's versions rolled_back")


@dataclass
class Outcome:
    """What a rehearsal decided, and the traffic it sent."""

    decision: str  # promote, rollback or undecided
    record: Path
    statuses: dict[int, int]


def rehearsal(params: Params, lock_file: Path | None, inject: str | None) -> Outcome:
    """The controller to its decision on loopback traffic; the record goes to reports/canary-rehearsal.jsonl."""
    from lockstep.serve.canary import Controller
    from lockstep.serve.client import Client
    from lockstep.serve.server import Running, build

    deploy = params.deploy.model_copy(update={"window_s": params.deploy.rehearsal_window_s})
    token = secrets.token_hex(16)
    app, service = build(params, lock_file, 0.0, inject, admin_token=token, log=False)
    RECORD.unlink(missing_ok=True)
    stop = threading.Event()
    requests = synthetic_requests(params)
    counts: dict[int, int] = {}
    # The model's requests take milliseconds, a language model's answer seconds: the predict traffic
    # gets its own senders, so every window holds enough of it on both arms (min_samples), and one
    # sender keeps the prompts coming; a request the canary slows down holds up only its sender
    predict = [r for r in requests if r[0] == "/v1/predict"]
    prompts = [r for r in requests if r[0] != "/v1/predict"]
    senders = [(predict, n) for n in range(PREDICT_SENDERS if predict else 0)]
    senders += [(prompts, n) for n in range(PROMPT_SENDERS if predict else PREDICT_SENDERS)] if prompts else []
    with Running(app) as running:
        drivers = [
            threading.Thread(target=traffic, args=(running.url, kind, stop, n * 7919 + i, counts))
            for i, (kind, n) in enumerate(senders)
        ]
        for driver in drivers:
            driver.start()
        try:
            client = Client(running.url)
            wait = until_samples(Client(running.url), deploy.thresholds.min_samples)
            decision = Controller(deploy, service.lock, client, token, RECORD, registry=DryRun(), wait=wait).run()
        finally:
            stop.set()
            for driver in drivers:
                driver.join()
    return Outcome(decision, RECORD, dict(sorted(counts.items())))
