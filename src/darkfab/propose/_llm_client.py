"""A small client for OpenAI-compatible chat-completions endpoints (OpenAI, Anthropic's compatible API, Ollama,
vLLM, llama.cpp's server...), shared by every darkfab proposer that asks a language model.

Usage::

    client = ChatClient(spec.search.llm)             # an LLMSpec
    result = client.complete([{"role": "user", "content": "..."}])
    if result.ok:
        use(result.text)
    result.prompt_tokens, result.completion_tokens, result.cost, result.attempts   # always filled in

:meth:`ChatClient.complete` never raises for what a network or a server can do: it retries a 429 (waiting
as long as ``Retry-After`` / ``retry-after-ms`` asks, capped), a 408/409/5xx, a timeout and a dropped
connection up to ``spec.retries`` times with exponential backoff and jitter, then returns a
:class:`ChatResult` whose ``status`` is ``ok``, ``429``, ``timeout`` or ``error``. Every HTTP attempt is
listed in ``ChatResult.attempts``, so a caller can record each one.

It is written on httpx rather than the ``openai`` package: the protocol is one POST, and darkfab needs what
that package hides - each attempt's outcome (a 429, a timeout, a dropped connection) for the record, its own
reading of ``Retry-After``, and token accounting when a server omits ``usage`` - without another dependency
or its import time.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx

from ..spec import LLMSpec

ChatStatus = Literal["ok", "error", "429", "timeout"]
CHARS_PER_TOKEN = 3
"""Token estimate (characters per token; on the high side for JSON-heavy prompts) where a server's answer
carries no ``usage``, and for keeping a request within the budgets."""
MAX_WAIT_S = 60.0
"""Longest pause between two attempts, whatever ``Retry-After`` asks for."""
_RETRY_STATUS = frozenset({408, 409, 500, 502, 503, 504})
_ERROR_BODY = 300  # characters of a failed response quoted in its error


@dataclass(frozen=True)
class Attempt:
    """One HTTP request and what came of it."""

    status: ChatStatus
    error: str
    latency_s: float
    http_status: int | None = None
    waited_s: float = 0.0  # the pause taken after it, before the next attempt


@dataclass(frozen=True)
class ChatResult:
    """The outcome of :meth:`ChatClient.complete`: the answer, or why there is none, and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    status: ChatStatus
    error: str
    latency_s: float  # all attempts and pauses together
    attempts: tuple[Attempt, ...] = ()
    estimated: bool = False  # token counts estimated from text (the server sent no `usage`)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def estimate_tokens(text: str) -> int:
    """A rough token count of ``text`` (about three characters a token)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def messages_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A rough token count of a list of chat messages."""
    return sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asks to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ChatClient:
    """Chat completions from one endpoint, with retries, backoff, timeouts and token accounting."""

    def __init__(
        self,
        spec: LLMSpec,
        *,
        backoff_s: float = 0.5,
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
        field: str = "search.llm",
    ) -> None:
        """
        Args:
            spec: the endpoint, model, key variable, sampling, timeout, retries and prices.
            backoff_s: first pause after a failure with no ``Retry-After``; doubles each retry, with jitter.
            max_wait_s: cap on any single pause.
            sleep: how to pause (tests pass a recorder).
            transport: an httpx transport (tests, proxies); the default opens real connections.
            seed: seeds the jitter.
            field: where the factory file sets ``spec`` (``search.llm``, ``reward.judge``), named in errors.
        """
        self.spec = spec
        self.url = f"{spec.base_url}/chat/completions"
        self._backoff = max(0.0, backoff_s)
        self._max_wait = max(0.0, max_wait_s)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._transport = transport
        self.field = field

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price of a request, from ``spec.prices``."""
        prices = self.spec.prices
        return prompt_tokens / 1000.0 * prices.input_per_1k + completion_tokens / 1000.0 * prices.output_per_1k

    def complete(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None = None) -> ChatResult:
        """Ask the model to continue ``messages``; retries as the spec allows. Never raises for HTTP trouble."""
        t0 = time.monotonic()
        headers = {"Content-Type": "application/json"}
        if self.spec.api_key_env:
            key = os.environ.get(self.spec.api_key_env, "")
            if not key:
                error = (
                    f"the environment variable {self.spec.api_key_env} ({self.field}.api_key_env) is not set; "
                    f"fix: export {self.spec.api_key_env}=<your key>, or empty api_key_env for a local server"
                )
                return self._failed("error", error, t0, ())
            headers["Authorization"] = f"Bearer {key}"
        payload = {
            "model": self.spec.model,
            "messages": [dict(m) for m in messages],
            "temperature": self.spec.temperature,
            "max_tokens": int(max_tokens if max_tokens is not None else self.spec.max_tokens),
        }
        # a connection pool per call: nothing is left open between calls (a proposer has no close())
        with httpx.Client(timeout=httpx.Timeout(self.spec.timeout), transport=self._transport) as http:
            return self._attempts(http, payload, headers, t0)

    # -- internals ---------------------------------------------------------------------------------

    def _attempts(self, http: httpx.Client, payload: dict[str, Any], headers: dict[str, str], t0: float) -> ChatResult:
        attempts: list[Attempt] = []
        for i in range(self.spec.retries + 1):
            start = time.monotonic()
            status, error, http_status, wait, body = self._post(http, payload, headers)
            latency = time.monotonic() - start
            last = i == self.spec.retries
            if status == "ok" and body is not None:
                attempts.append(Attempt("ok", "", latency, http_status))
                return self._answer(body, payload, t0, tuple(attempts))
            retryable = wait is not None
            pause = 0.0
            if retryable and not last:
                pause = min(self._max_wait, wait if wait else self._backoff * 2**i * (0.5 + self._rng.random() / 2))
            attempts.append(Attempt(status, error, latency, http_status, pause))
            if not retryable or last:
                break
            if pause > 0:
                self._sleep(pause)
        final = attempts[-1]
        tried = f" after {len(attempts)} attempts" if len(attempts) > 1 else ""
        return self._failed(final.status, f"{final.error}{tried}", t0, tuple(attempts))

    def _post(
        self, http: httpx.Client, payload: dict[str, Any], headers: dict[str, str]
    ) -> tuple[ChatStatus, str, int | None, float | None, dict[str, Any] | None]:
        """(status, error, HTTP status, wait before a retry or None when not worth retrying, parsed body).

        ``spec.timeout`` bounds the whole attempt, not each socket read: an endpoint that trickles its answer
        a byte at a time is cut off once the attempt has taken ``timeout`` seconds in all.
        """
        deadline = time.monotonic() + self.spec.timeout
        try:
            with http.stream("POST", self.url, json=payload, headers=headers) as streamed:
                chunks: list[bytes] = []
                for chunk in streamed.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        got = sum(map(len, chunks))
                        return (
                            "timeout",
                            f"no whole answer within {self.spec.timeout:g}s ({self.field}.timeout bounds the whole "
                            f"request; {got} bytes had arrived)",
                            None,
                            0.0,
                            None,
                        )
                plain = {  # the body is already decoded: the copy must not decode it twice
                    k: v
                    for k, v in streamed.headers.items()
                    if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
                }
                response = httpx.Response(
                    streamed.status_code, headers=plain, content=b"".join(chunks), request=streamed.request
                )
        except httpx.TimeoutException as exc:
            return "timeout", f"no answer within {self.spec.timeout:g}s ({type(exc).__name__})", None, 0.0, None
        except httpx.TransportError as exc:
            what = " ".join(str(exc).split()) or type(exc).__name__
            return "error", f"connection to {self.url} failed: {what}", None, 0.0, None
        code = response.status_code
        asked = retry_after(response.headers)
        if code == 429:
            return "429", f"rate limited (HTTP 429){_body_note(response)}", code, asked or 0.0, None
        if code >= 400:
            wait = (asked or 0.0) if code in _RETRY_STATUS else None
            return "error", f"HTTP {code} from {self.url}{_body_note(response)}", code, wait, None
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return (
                "error",
                f"the endpoint answered HTTP {code} with a body that is not JSON{_body_note(response)}",
                code,
                None,
                None,
            )
        if not isinstance(body, dict):
            return (
                "error",
                f"the endpoint answered with JSON that is not an object: {str(body)[:_ERROR_BODY]}",
                code,
                None,
                None,
            )
        return "ok", "", code, None, body

    def _answer(
        self, body: dict[str, Any], payload: dict[str, Any], t0: float, attempts: tuple[Attempt, ...]
    ) -> ChatResult:
        text, problem = _message_text(body)
        usage = body.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
        estimated = prompt is None or completion is None
        if prompt is None:
            prompt = messages_tokens(payload["messages"])
        if completion is None:
            completion = estimate_tokens(text) if text else 0
        status: ChatStatus = "ok" if not problem else "error"
        if problem:
            attempts = (*attempts[:-1], replace(attempts[-1], status="error", error=problem))
        return ChatResult(
            text=text,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=self.cost_of(prompt, completion),
            status=status,
            error=problem,
            latency_s=time.monotonic() - t0,
            attempts=attempts,
            estimated=estimated,
            raw=body,
        )

    def _failed(self, status: ChatStatus, error: str, t0: float, attempts: tuple[Attempt, ...]) -> ChatResult:
        return ChatResult("", 0, 0, 0.0, status, error, time.monotonic() - t0, attempts)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


def _message_text(body: dict[str, Any]) -> tuple[str, str]:
    """The first choice's text, and a problem when the body is not a chat completion."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", f"the answer has no `choices`: {json.dumps(body)[:_ERROR_BODY]}"
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else choices[0].get("text")
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        return "", f"the first choice has no text content: {json.dumps(choices[0])[:_ERROR_BODY]}"
    return content, ""


def _body_note(response: httpx.Response) -> str:
    try:
        text = " ".join(response.text.split())
    except (UnicodeDecodeError, httpx.HTTPError):
        return ""
    return f": {text[:_ERROR_BODY]}" if text else ""
