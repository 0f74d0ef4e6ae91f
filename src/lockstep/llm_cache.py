"""Record/replay cache of language-model answers: write-once files keyed by the canonical request.

A key is the SHA-256 of the canonical JSON of everything that decides an answer (`llm.request`:
provider, model name and file digest, messages, response format, every sampling parameter,
sample index). Transport fields (`DENIED`) never enter it, keys are sorted and integral numbers
normalised, so 0 and 0.0 hash alike. Each entry, `<dir>/<key>.json`, holds the request, the
answer, its token usage, the latency measured when it was recorded, and a checksum of all that:
an entry edited after it was written fails on load, naming its file. Only answers are written:
a failed call raises before anything reaches the cache.

Modes (conf/llm `cache_mode`, overridden by the environment variable LOCKSTEP_LLM_CACHE):

    live      the cache is neither read nor written
    record    recorded answers are reused; the others are asked for and recorded (the default)
    replay    recorded answers only: a case without one fails the run before any call
    refresh   every case is asked for again and its entry rewritten
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.config import StageError
from lockstep.io import write_atomic

if TYPE_CHECKING:
    from lockstep.llm import Answer, Backend
    from lockstep.prompts import ModelSettings

MODES = ("live", "record", "replay", "refresh")
ENV = "LOCKSTEP_LLM_CACHE"
# How a request travels, never what it answers: dropped from the key wherever they appear
DENIED = frozenset({"stream", "timeout", "timeout_s", "max_retries", "base_url", "api_key", "api_key_env",
                    "headers", "user", "cache_prompt", "n_threads_http"})  # fmt: skip
VERSION = 1  # of the key and entry format: a change makes every entry a miss, never a wrong hit


def mode(configured: str, environ: Mapping[str, str] = os.environ) -> str:
    """The cache mode in force: LOCKSTEP_LLM_CACHE when set, else conf/llm's `cache_mode`."""
    override = environ.get(ENV, "").strip()
    if override and override not in MODES:
        raise StageError(f"{ENV}={override!r}: not a cache mode; use one of {', '.join(MODES)}")
    return override or configured


def numbers(value: Any) -> Any:
    """The value with integral floats as integers, recursively: 0 and 0.0 are one number."""
    if isinstance(value, dict):
        return {str(k): numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalised(request: dict[str, Any]) -> dict[str, Any]:
    """The request without transport fields (at its top level and among its parameters; a field of
    that name inside the messages or a JSON schema is content, and stays) and with numbers unified."""
    kept = {k: v for k, v in request.items() if k not in DENIED}
    for section in ("params", "engine"):
        if isinstance(kept.get(section), dict):
            kept[section] = {k: v for k, v in kept[section].items() if k not in DENIED}
    return numbers(kept)


def canonical(request: dict[str, Any]) -> str:
    return json.dumps(normalised(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key(request: dict[str, Any]) -> str:
    return hashlib.sha256(f"lockstep-llm-cache/{VERSION}\n{canonical(request)}".encode()).hexdigest()


def checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    request: dict[str, Any]
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float

    def body(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "key": self.key,
            "request": normalised(self.request),
            "answer": self.text,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "latency_s": self.latency_s,
        }

    def to_json(self) -> str:
        body = self.body()
        return json.dumps(body | {"checksum": checksum(body)}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def answer(self) -> Answer:
        from lockstep.llm import Answer

        return Answer(self.text, self.input_tokens, self.output_tokens, self.latency_s, replayed=True)


def read_entry(path: Path) -> Entry:
    """One entry, checked: its request must hash to its file name and its content to its checksum."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = Entry(
            key=data["key"],
            request=data["request"],
            text=data["answer"],
            input_tokens=int(data["usage"]["input_tokens"]),
            output_tokens=int(data["usage"]["output_tokens"]),
            latency_s=float(data["latency_s"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StageError(f"{path}: not a cache entry ({type(exc).__name__}); delete it and record again") from None
    if entry.key != path.stem or key(entry.request) != path.stem or data.get("checksum") != checksum(entry.body()):
        raise StageError(f"{path}: changed since it was recorded (its content no longer matches its key and"
                         f" checksum); delete it and record again ({ENV}=record)")  # fmt: skip
    return entry


def fields(request: dict[str, Any]) -> dict[str, str]:
    """A request as field -> canonical value: one field per message part and per sampling parameter."""
    flat: dict[str, str] = {}
    for name, value in normalised(request).items():
        if name == "messages" and isinstance(value, list):
            flat["messages.count"] = str(len(value))
            for i, message in enumerate(value):
                flat |= {f"messages[{i}].{part}": json.dumps(text, sort_keys=True) for part, text in message.items()}
        elif name == "params" and isinstance(value, dict):
            flat |= {f"params.{k}": json.dumps(v, sort_keys=True) for k, v in value.items()}
        else:
            flat[name] = json.dumps(value, sort_keys=True)
    return flat


def differing(request: dict[str, Any], other: dict[str, Any]) -> list[str]:
    mine, theirs = fields(request), fields(other)
    return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))


class Cache:
    """The entries of one directory, read and written as the mode says."""

    def __init__(self, folder: Path | None, cache_mode: str) -> None:
        self.folder = folder or Path()  # no folder: live, nothing read or written
        self.mode = cache_mode if folder is not None else "live"
        self._read: dict[str, Entry] = {}  # entries read (and checked) once per run

    def get(self, request_key: str) -> Entry | None:
        """The recorded answer, or None: always None when live or refreshing."""
        if self.mode in ("live", "refresh"):
            return None
        if request_key not in self._read:
            path = self.folder / f"{request_key}.json"
            if not path.is_file():
                return None
            self._read[request_key] = read_entry(path)
        return self._read[request_key]

    def put(self, entry: Entry) -> None:
        """Write an entry once; only refresh replaces one. Live runs write nothing."""
        path = self.folder / f"{entry.key}.json"
        if self.mode == "live" or (path.exists() and self.mode != "refresh"):
            return
        write_atomic(path, entry.to_json())

    def requests(self) -> list[dict[str, Any]]:
        """The request of every entry (unchecked: only to say how a missing one differs)."""
        return [json.loads(p.read_text(encoding="utf-8")).get("request", {}) for p in self.folder.glob("*.json")]

    def check_replay(self, cases: list[tuple[str, dict[str, Any]]]) -> None:
        """In replay, fail before any call when a case (id, request) has no entry, naming the cases and,
        for each, the key fields in which the closest entry differs."""
        if self.mode != "replay":
            return
        missing = [(case, request) for case, request in cases if self.get(key(request)) is None]
        if not missing:
            return
        groups: dict[str, list[str]] = {}
        known = self.requests()
        for case, request in missing:  # the fields in which the closest entry differs (None: no entry at all)
            diff = min((differing(request, other) for other in known), key=len, default=None)
            what = "no entry at all" if diff is None else "closest entry differs in " + ", ".join(diff)
            groups.setdefault(what, []).append(case)
        detail = "; ".join(f"{', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''} ({what})"
                           for what, ids in groups.items())  # fmt: skip
        raise StageError(
            f"{ENV}=replay: {len(missing)} of {len(cases)} cases have no recorded answer in {self.folder}: {detail};"
            f" record them ({ENV}=record dvc repro), commit dvc.lock and `dvc push`"
        )


class Cached:
    """A backend that answers from the cache where it may and asks the model otherwise, recording
    the answer. The model is only started (`connect`) at the first miss: a run entirely from the
    cache loads none."""

    def __init__(self, cache: Cache, request: Callable[..., dict[str, Any]], connect: Callable[[], Backend]) -> None:
        self.cache, self._request, self._connect = cache, request, connect
        self._model: Backend | None = None
        self.hits = self.calls = 0

    def recorded(self, messages: list[dict[str, str]], settings: ModelSettings, schema: dict[str, Any] | None) -> bool:
        """Whether this call would be answered from the cache."""
        return self.cache.get(key(self._request(messages, settings, schema))) is not None

    def chat(
        self, messages: list[dict[str, str]], settings: ModelSettings, schema: dict[str, Any] | None = None
    ) -> Answer:
        request = self._request(messages, settings, schema)
        request_key = key(request)
        entry = self.cache.get(request_key)
        if entry is not None:
            self.hits += 1
            return entry.answer()
        if self.cache.mode == "replay":  # check_replay stops a run before this; a stray miss still never calls
            raise StageError(f"{ENV}=replay: no recorded answer for {request_key} in {self.cache.folder}")
        if self._model is None:
            self._model = self._connect()
        answer = self._model.chat(messages, settings, schema)  # an error raises here: nothing is recorded
        self.calls += 1
        self.cache.put(Entry(request_key, request, answer.text, answer.input_tokens, answer.output_tokens,
                             round(answer.latency_s, 4)))  # fmt: skip
        return answer
