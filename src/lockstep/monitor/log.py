"""The inference log: each sampled request's inputs, outputs, variant, versions, latency and
quality signals, in SQLite. A request only puts a record on a bounded queue (never blocks);
a background thread redacts PII and writes batches. A full queue drops the record and counts it.

Table `inference`: ts (epoch s), deploy_id, variant, endpoint (predict | prompt), model_name,
model_version, prompt_name, prompt_version, latency_ms, inputs (JSON: the rows, or the prompt's
variables), outputs (JSON: the predictions, or the answer), quality (JSON list: empty, invalid,
schema, pii, refusal), error (text or NULL).
"""

from __future__ import annotations

import json
import queue
import random
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLUMNS = ("ts", "deploy_id", "variant", "endpoint", "model_name", "model_version", "prompt_name",
           "prompt_version", "latency_ms", "inputs", "outputs", "quality", "error")  # fmt: skip
SCHEMA = """CREATE TABLE IF NOT EXISTS inference (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, deploy_id TEXT, variant TEXT, endpoint TEXT, model_name TEXT,
    model_version INTEGER, prompt_name TEXT, prompt_version INTEGER, latency_ms REAL, inputs TEXT, outputs TEXT,
    quality TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS inference_ts ON inference (ts);"""
INSERT = f"INSERT INTO inference ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
BATCH = 500
_STOP = object()


def pii_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """The prompt gates' detector (MLflow's PIIDetection) as compiled patterns, to redact with."""
    from mlflow.genai.scorers.builtin_scorers import _PII_PATTERNS

    return [(kind, re.compile(pattern)) for kind, pattern in _PII_PATTERNS.items()]


def redact(value: Any, patterns: list[tuple[str, re.Pattern[str]]]) -> Any:
    """Every string in value with each match of the detector replaced by [PII:<kind>]."""
    if isinstance(value, str):
        for kind, pattern in patterns:
            value = pattern.sub(f"[PII:{kind}]", value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, patterns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, patterns) for v in value]
    return value


class InferenceLog:
    """Append-only, sampled, never in a request's way. `flush()` waits until queued records are written."""

    def __init__(
        self,
        path: Path,
        sample_rate: float = 1.0,
        queue_size: int = 10000,
        on_drop: Callable[[int], None] | None = None,
        start: bool = True,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.on_drop = on_drop
        self.dropped = 0  # full queue, or a failed write
        self.written = 0
        self._lock = threading.Lock()
        self._patterns = pii_patterns()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()
        self.thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        if start:
            self.thread.start()

    def start(self) -> None:
        self.thread.start()

    def record(self, **fields: Any) -> bool:
        """Queue one request's record (sampled); False when it is not kept. Never blocks, never raises."""
        if self.sample_rate < 1 and random.random() >= self.sample_rate:
            return False
        try:
            self.queue.put_nowait(fields)
        except queue.Full:
            self._drop(1)
            return False
        return True

    def _drop(self, n: int) -> None:
        with self._lock:
            self.dropped += n
        if self.on_drop:
            self.on_drop(n)

    def _row(self, fields: dict[str, Any]) -> tuple[Any, ...]:
        row = []
        for column in COLUMNS:
            value = fields.get(column)
            if column in ("inputs", "outputs", "error"):
                value = redact(value, self._patterns)
            if column in ("inputs", "outputs", "quality") and value is not None:
                value = json.dumps(value, default=str)
            row.append(value)
        return tuple(row)

    def _run(self) -> None:
        db = sqlite3.connect(self.path)
        try:
            while True:
                batch = [self.queue.get()]
                while len(batch) < BATCH:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                records = [r for r in batch if r is not _STOP]
                try:
                    db.executemany(INSERT, [self._row(r) for r in records])
                    db.commit()
                    with self._lock:
                        self.written += len(records)
                except Exception:  # a full disk or a locked file costs records, never the service
                    self._drop(len(records))
                for _ in batch:
                    self.queue.task_done()
                if len(records) < len(batch):
                    return
        finally:
            db.close()

    def flush(self) -> None:
        self.queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join(timeout=30)


def read_log(path: Path, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """The logged records between since and until (epoch s), oldest first, JSON columns parsed."""
    query, args = "SELECT * FROM inference WHERE 1=1", []
    if since is not None:
        query, args = query + " AND ts >= ?", [*args, since]
    if until is not None:
        query, args = query + " AND ts < ?", [*args, until]
    db = sqlite3.connect(path)
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute(query + " ORDER BY ts, id", args)]
    finally:
        db.close()
    for row in rows:
        for column in ("inputs", "outputs", "quality"):
            row[column] = json.loads(row[column]) if row[column] is not None else None
    return rows
