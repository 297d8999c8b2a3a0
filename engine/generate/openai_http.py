"""Any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server, hosted APIs) over HTTP."""

from __future__ import annotations

import json
import os

from engine.errors import ConfigError, GenerationError


class OpenAICompatibleGenerator:
    """POSTs to ``{base_url}/chat/completions`` and returns the first choice's message.

    Args:
        base_url: e.g. ``http://127.0.0.1:11434/v1`` (Ollama) or ``http://127.0.0.1:8000/v1`` (vLLM).
        model: the model name the server knows.
        api_key_env: name of an environment variable holding a key, sent as a Bearer token.
        timeout_s: seconds to wait for connecting and for the whole answer.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "", timeout_s: float = 120.0):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"generate.url {base_url!r} is not an http:// or https:// URL")
        if not model:
            raise ConfigError(f"generate.model must name the model served at {base_url}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = f"{model} at {base_url}"
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"generate.api_key_env names {self.api_key_env}, which is not set")
        return {"Authorization": f"Bearer {key}"}

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float = 0.0, seed: int = 0) -> str:
        """The endpoint's reply to ``messages``.

        Raises:
            GenerationError: naming the URL, when the connection fails or times out, the
                status is not 200, or the body is not a chat completion.
        """
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_new_tokens,
            "seed": seed,
            "stream": False,
        }
        try:
            response = httpx.post(self.url, json=body, headers=self._headers(), timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            raise GenerationError(f"{self.url}: no answer within {self.timeout_s:g} s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise GenerationError(f"{self.url}: request failed: {exc or type(exc).__name__}") from exc
        if response.status_code != 200:
            raise GenerationError(f"{self.url}: HTTP {response.status_code}: {_snippet(response.text)}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
            raise GenerationError(
                f"{self.url}: the answer is not a chat completion ({type(exc).__name__}: {exc}): {_snippet(response.text)}"
            ) from exc
        if not isinstance(content, str):
            raise GenerationError(f"{self.url}: the answer's message content is not text: {_snippet(response.text)}")
        return content.strip()


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
