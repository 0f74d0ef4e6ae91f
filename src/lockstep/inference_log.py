"""The inference log: each sampled request's inputs, outputs, variant, versions, latency and
quality signals, in SQLite (a file, the default) or PostgreSQL (a `postgresql://` URL, for teams).
A request only puts a record on a bounded queue (never blocks); a background thread keeps the
allow-listed input fields (conf/monitor `fields`), redacts PII (`redact`, lockstep.pii's patterns
by default), writes batches and deletes what is past retention (`retention_days`,
`retention_rows`). A full queue drops the record and counts it; so does a failed write. A
prompt's text is never logged: its name and version, the variables and the answer.

Table `inference`: ts (epoch s), request_id (the service's X-Request-ID, what delayed labels are
joined by), deploy_id, variant, endpoint (predict | prompt), model_name,
model_version, prompt_name, prompt_version, latency_ms, inputs (JSON: the rows, or the prompt's
variables), outputs (JSON: the predictions, or the answer), quality (JSON list: empty, invalid,
schema, pii, refusal), error (text or NULL). Both databases are reached through SQLAlchemy.
"""

from __future__ import annotations

import json
import queue
import random
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockstep.config import StageError
from lockstep.config import redact as redact_uri

COLUMNS = ("ts", "request_id", "deploy_id", "variant", "endpoint", "model_name", "model_version", "prompt_name",
           "prompt_version", "latency_ms", "inputs", "outputs", "quality", "error")  # fmt: skip
JSON_COLUMNS = ("inputs", "outputs", "quality")
BATCH = 500
_STOP = object()
POSTGRES = ("postgresql://", "postgresql+psycopg2://", "postgres://")


def is_postgres(store: str | Path) -> bool:
    return str(store).startswith(POSTGRES)


def database_url(store: str | Path) -> str:
    """SQLAlchemy's URL of the log: a PostgreSQL URL as given (driver psycopg2), else a SQLite file."""
    if is_postgres(store):
        return "postgresql+psycopg2://" + str(store).split("://", 1)[1]
    return f"sqlite:///{Path(store)}"


def describe(store: str | Path) -> str:
    """The log as messages name it: any password replaced by ***."""
    return redact_uri(str(store))


def _table(metadata: Any) -> Any:
    from sqlalchemy import Column, Float, Index, Integer, Table, Text

    table = Table(
        "inference", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True), Column("ts", Float, nullable=False),
        *(Column(c, Text) for c in ("deploy_id", "variant", "endpoint", "model_name")),
        Column("model_version", Integer), Column("prompt_name", Text), Column("prompt_version", Integer),
        Column("latency_ms", Float), *(Column(c, Text) for c in ("inputs", "outputs", "quality", "error")),
        Column("request_id", Text),
    )  # fmt: skip
    Index("inference_ts", table.c.ts)
    return table


def engine(store: str | Path) -> tuple[Any, Any]:
    """(engine, table) of the log; PostgreSQL needs the driver, psycopg2 (lockstep-mlops[postgres])."""
    from sqlalchemy import MetaData, create_engine

    if is_postgres(store):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise StageError(
                f"inference log {describe(store)}: PostgreSQL needs psycopg2: depend on lockstep-mlops[postgres]"
            ) from None
        connect_args: dict[str, Any] = {"connect_timeout": 10}
    else:
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {}
    return create_engine(database_url(store), connect_args=connect_args), _table(MetaData())


def existing(db: Any) -> set[str]:
    """The columns the log's table has (an older log lacks the newer ones)."""
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(db).get_columns("inference")}


def pii_patterns(patterns: dict[str, str] | None = None) -> list[tuple[str, re.Pattern[str]]]:
    """The patterns to redact with: the project's (conf/monitor redact), else lockstep.pii's defaults."""
    from lockstep.pii import compiled

    return compiled(patterns)


def kept(value: Any, fields: list[str] | None) -> Any:
    """Only the allow-listed fields of the inputs (a row, a list of rows, a prompt's variables);
    everything when fields is None. A field left out is never stored, whatever its type."""
    if fields is None:
        return value
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in fields}
    if isinstance(value, list):
        return [kept(v, fields) for v in value]
    return value


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
    """Append-only, sampled, never in a request's way. `flush()` waits until queued records are written.

    `store` is a SQLite file or a PostgreSQL URL (its password from PGPASSWORD or ~/.pgpass, never
    the URL in a file). The table is created at start-up: a database out of reach fails then, in one
    line, not on a request."""

    def __init__(
        self,
        store: str | Path,
        sample_rate: float = 1.0,
        queue_size: int = 10000,
        on_drop: Callable[[int], None] | None = None,
        start: bool = True,
        fields: list[str] | None = None,
        patterns: dict[str, str] | None = None,
        retention_days: float | None = None,
        retention_rows: int | None = None,
    ) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        self.store = store
        self.sample_rate = sample_rate
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.on_drop = on_drop
        self.dropped = 0  # full queue, or a failed write
        self.written = 0
        self._lock = threading.Lock()
        self._patterns = pii_patterns(patterns)
        self.fields = fields  # the allow-list of input fields stored (None: all)
        self.retention_days, self.retention_rows = retention_days, retention_rows
        self.engine, self.table = engine(store)
        try:
            with self.engine.begin() as db:
                if not is_postgres(store):
                    db.exec_driver_sql("PRAGMA journal_mode=WAL")
                self.table.metadata.create_all(db)
                if "request_id" not in existing(db):  # a log written before requests had ids
                    db.exec_driver_sql("ALTER TABLE inference ADD COLUMN request_id TEXT")
        except SQLAlchemyError as exc:
            self.engine.dispose()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StageError(f"inference log {describe(store)}: cannot create its table: {reason}") from None
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

    def _row(self, fields: dict[str, Any]) -> dict[str, Any]:
        row = {}
        for column in COLUMNS:
            value = fields.get(column)
            if column == "inputs":
                value = kept(value, self.fields)
            if column in ("inputs", "outputs", "error"):
                value = redact(value, self._patterns)
            if column in JSON_COLUMNS and value is not None:
                value = json.dumps(value, default=str)
            row[column] = value
        return row

    def _run(self) -> None:
        insert = self.table.insert()
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
                    if records:
                        with self.engine.begin() as db:
                            db.execute(insert, [self._row(r) for r in records])
                            self._expire(db, max(r.get("ts") or 0 for r in records))
                    with self._lock:
                        self.written += len(records)
                except Exception:  # a full disk, a locked file, a database away: records lost, never the service
                    self._drop(len(records))
                for _ in batch:
                    self.queue.task_done()
                if len(records) < len(batch):
                    return
        finally:
            self.engine.dispose()

    def _expire(self, db: Any, now: float) -> None:
        """Retention: records older than retention_days before the newest, and beyond the newest
        retention_rows, are deleted with each batch written."""
        from sqlalchemy import delete, select

        t = self.table
        if self.retention_days is not None:
            db.execute(delete(t).where(t.c.ts < now - self.retention_days * 86400))
        if self.retention_rows is not None:
            cut = db.execute(select(t.c.id).order_by(t.c.id.desc()).offset(self.retention_rows).limit(1)).scalar()
            if cut is not None:
                db.execute(delete(t).where(t.c.id <= cut))

    def flush(self) -> None:
        self.queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join(timeout=30)
        else:
            self.engine.dispose()


def read_log(store: str | Path, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """The logged records between since and until (epoch s), oldest first, JSON columns parsed."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    db_engine, table = engine(store)
    try:
        with db_engine.connect() as db:
            have = existing(db)
        query = select(*(c for c in table.c if c.name in have))
    except SQLAlchemyError:
        query = select(table)  # the error is named below
    if since is not None:
        query = query.where(table.c.ts >= since)
    if until is not None:
        query = query.where(table.c.ts < until)
    try:
        with db_engine.connect() as db:
            rows = [dict(r._mapping) for r in db.execute(query.order_by(table.c.ts, table.c.id))]
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StageError(f"cannot read the inference log {describe(store)}: {reason}") from None
    finally:
        db_engine.dispose()
    for row in rows:
        row.setdefault("request_id", None)
        for column in JSON_COLUMNS:
            row[column] = json.loads(row[column]) if row[column] is not None else None
    return rows
