"""
LLM providers behind one constructor and one error type.

The engine builds every chat model through `build_chat_model` and turns every failure into a
`ProviderError` through `provider_error`, so provider quirks (parameter names, exception classes,
keys echoed back in error messages) stay in this module. Retries are the engine's job: every client
is built with `max_retries=0` and a timeout of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anthropic
import httpx
import httpx2
import ollama
import openai
from langchain_anthropic import ChatAnthropic
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

__all__ = [
    "PROVIDERS",
    "ProviderError",
    "ScriptedChatModel",
    "build_chat_model",
    "provider_error",
    "redact",
]

PROVIDERS: tuple[str, ...] = ("scripted", "openai", "anthropic", "ollama", "openai_compatible")

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_ANTHROPIC_MAX_TOKENS = 1024
# Vendors' own messages can carry whole request bodies; keep what we show and store bounded.
MAX_MESSAGE_LENGTH = 1000

# The names the engine may set per provider, mapped to the field each LangChain class expects.
_PARAMETERS: dict[str, dict[str, str]] = {
    "scripted": {"replies": "replies", "chunk_size": "chunk_size", "delay_ms": "delay_ms"},
    "openai": {
        "temperature": "temperature",
        "max_tokens": "max_tokens",
        "top_p": "top_p",
        "frequency_penalty": "frequency_penalty",
        "presence_penalty": "presence_penalty",
        "seed": "seed",
        "stop": "stop",
    },
    "anthropic": {
        "temperature": "temperature",
        "max_tokens": "max_tokens",
        "top_p": "top_p",
        "top_k": "top_k",
        "stop": "stop_sequences",
    },
    "ollama": {
        "temperature": "temperature",
        "max_tokens": "num_predict",
        "num_predict": "num_predict",
        "top_p": "top_p",
        "top_k": "top_k",
        "seed": "seed",
        "num_ctx": "num_ctx",
        "stop": "stop",
    },
}
_PARAMETERS["openai_compatible"] = _PARAMETERS["openai"]


class ProviderError(Exception):
    """A provider call failed; `code` is machine-readable, str(self) is safe to show (secrets redacted)."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only flag would be lost by Exception's default pickling (results cross processes).
        return (type(self), (self.code, self.message), {"transient": self.transient})

    def __repr__(self) -> str:
        return f"ProviderError(code={self.code!r}, message={self.message!r}, transient={self.transient})"


# =============================================================================
# Construction
# =============================================================================


def build_chat_model(
    *,
    provider: str,
    model: str,
    parameters: dict | None = None,
    secret: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> BaseChatModel:
    """A LangChain chat model for `provider`, with the engine's parameters translated to the class's own."""
    if provider not in PROVIDERS:
        raise ValueError(f"Unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}.")
    if not model:
        raise ValueError("model must name the provider's model.")
    options = _translate_parameters(provider, parameters or {})
    return _BUILDERS[provider](model=model, options=options, secret=secret, base_url=base_url, timeout=timeout)


def _translate_parameters(provider: str, parameters: dict[str, Any]) -> dict[str, Any]:
    accepted = _PARAMETERS[provider]
    options: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in accepted:
            raise ValueError(
                f"Unknown parameter {name!r} for provider {provider!r}; accepted: {', '.join(sorted(accepted))}."
            )
        field = accepted[name]
        if field in options:
            raise ValueError(f"Parameter {name!r} sets {field!r} a second time for provider {provider!r}.")
        options[field] = value
    return options


def _require_secret(provider: str, secret: str | None) -> str:
    # Falling back to OPENAI_API_KEY / ANTHROPIC_API_KEY would spend the operator's key on a user's agent,
    # and send it to whatever base_url the agent names.
    if not secret:
        raise ValueError(f"Provider {provider!r} needs a secret (its API key).")
    return secret


def _build_openai(
    *, model: str, options: dict[str, Any], secret: str | None, base_url: str | None, timeout: float
) -> BaseChatModel:
    return ChatOpenAI(
        model=model,
        api_key=_require_secret("openai", secret),
        base_url=base_url or None,
        timeout=timeout,
        max_retries=0,
        stream_usage=True,
        **options,
    )


def _build_openai_compatible(
    *, model: str, options: dict[str, Any], secret: str | None, base_url: str | None, timeout: float
) -> BaseChatModel:
    if not base_url:
        raise ValueError("Provider 'openai_compatible' needs base_url (for example https://api.deepseek.com/v1).")
    return ChatOpenAI(
        model=model,
        # Self-hosted servers (vLLM, llama.cpp) take no key, but the client insists on one; a placeholder
        # also keeps the environment's OPENAI_API_KEY from travelling to a third-party host.
        api_key=secret or "not-needed",
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        stream_usage=True,
        **options,
    )


def _build_anthropic(
    *, model: str, options: dict[str, Any], secret: str | None, base_url: str | None, timeout: float
) -> BaseChatModel:
    options = {"max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS, **options}
    if base_url:
        # Passing None would override the class's default endpoint with nothing.
        options["base_url"] = base_url
    return ChatAnthropic(
        model=model,
        api_key=_require_secret("anthropic", secret),
        timeout=timeout,
        max_retries=0,
        **options,
    )


def _build_ollama(
    *, model: str, options: dict[str, Any], secret: str | None, base_url: str | None, timeout: float
) -> BaseChatModel:
    client_kwargs: dict[str, Any] = {"timeout": timeout}
    if secret:
        # A local Ollama ignores it; hosted Ollama and reverse proxies in front of one expect a bearer token.
        client_kwargs["headers"] = {"Authorization": f"Bearer {secret}"}
    return ChatOllama(model=model, base_url=base_url or DEFAULT_OLLAMA_URL, client_kwargs=client_kwargs, **options)


def _build_scripted(
    *, model: str, options: dict[str, Any], secret: str | None, base_url: str | None, timeout: float
) -> BaseChatModel:
    return ScriptedChatModel(model=model, **options)


_BUILDERS: dict[str, Callable[..., BaseChatModel]] = {
    "scripted": _build_scripted,
    "openai": _build_openai,
    "openai_compatible": _build_openai_compatible,
    "anthropic": _build_anthropic,
    "ollama": _build_ollama,
}


# =============================================================================
# Scripted model
# =============================================================================


class ScriptedChatModel(BaseChatModel):
    """
    A real chat model that answers from a script, for demos and tests without a provider.

    Each call (invoke or stream, sync or async) takes the next entry of `replies` and repeats the last
    one once the script runs out. An entry is a text or `{"text": ..., "tool_calls": [{"name", "args"}]}`;
    `{input}` in a text becomes the last human message. Streaming cuts the text into `chunk_size`
    characters with `delay_ms` between chunks; token counts are whitespace-separated words.
    """

    model: str = "scripted"
    replies: list[str | dict[str, Any]] = Field(default_factory=list)
    chunk_size: int = Field(default=8, ge=1)
    delay_ms: float = Field(default=0, ge=0)

    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("replies")
    @classmethod
    def _check_replies(cls, replies: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for position, reply in enumerate(replies, start=1):
            if isinstance(reply, str):
                continue
            if unknown := set(reply) - {"text", "tool_calls"}:
                raise ValueError(f"Reply {position} has unknown keys: {', '.join(sorted(unknown))}.")
            if not isinstance(reply.get("text", ""), str):
                raise ValueError(f"Reply {position}: text must be a string.")
            for call in reply.get("tool_calls", []):
                if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                    raise ValueError(f"Reply {position}: each tool call needs a name.")
                if not isinstance(call.get("args", {}), dict):
                    raise ValueError(f"Reply {position}: tool call {call['name']!r} needs args as an object.")
        return replies

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "chunk_size": self.chunk_size, "delay_ms": self.delay_ms}

    @property
    def calls(self) -> int:
        """How many replies this instance has given."""
        return self._calls

    # -- the script ---------------------------------------------------------------------------------------

    def _next_reply(self, messages: list[BaseMessage]) -> tuple[str, list[ToolCall], UsageMetadata]:
        # Agent loops may call one instance from several threads (parallel branches); the counter is the script.
        with self._lock:
            position = self._calls
            self._calls += 1
        spec = self.replies[min(position, len(self.replies) - 1)] if self.replies else ""
        if isinstance(spec, str):
            spec = {"text": spec}
        text = spec.get("text", "").replace("{input}", _last_human_text(messages))
        tool_calls = [
            tool_call(name=call["name"], args=dict(call.get("args", {})), id=f"call_{uuid.uuid4().hex[:24]}")
            for call in spec.get("tool_calls", [])
        ]
        input_tokens = sum(len(str(message.text).split()) for message in messages)
        output_tokens = len(text.split()) + len(tool_calls)
        usage = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )
        return text, tool_calls, usage

    def _message(self, messages: list[BaseMessage]) -> ChatResult:
        text, tool_calls, usage = self._next_reply(messages)
        message = AIMessage(
            content=text,
            tool_calls=tool_calls,
            usage_metadata=usage,
            response_metadata={"model_name": self.model, "finish_reason": _finish_reason(tool_calls)},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        text, tool_calls, usage = self._next_reply(messages)
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)] or [""]
        chunks = [ChatGenerationChunk(message=AIMessageChunk(content=piece)) for piece in pieces[:-1]]
        last = AIMessageChunk(
            content=pieces[-1],
            tool_call_chunks=[
                tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=index)
                for index, call in enumerate(tool_calls)
            ],
            usage_metadata=usage,
            # Only on the last chunk: merging chunks concatenates string metadata.
            response_metadata={"model_name": self.model, "finish_reason": _finish_reason(tool_calls)},
            chunk_position="last",
        )
        return [*chunks, ChatGenerationChunk(message=last)]

    # -- BaseChatModel ------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._message(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._message(messages)

    # BaseChatModel reports each chunk to the callbacks itself (langchain-core 1.x); doing it here too
    # would deliver every token twice.
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for position, chunk in enumerate(self._chunks(messages)):
            if position and self.delay_ms:
                # The synchronous stream paces like a real model would; the async one awaits instead.
                time.sleep(self.delay_ms / 1000)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for position, chunk in enumerate(self._chunks(messages)):
            if position and self.delay_ms:
                # asyncio.sleep, so cancelling the consuming task stops the stream at once.
                await asyncio.sleep(self.delay_ms / 1000)
            yield chunk

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools as real models do; the script decides the calls, but the schemas must convert."""
        # A binding of self, not a copy: create_agent binds on every model call, and a copy would
        # restart the script at reply 1 each time.
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Parse the reply text as JSON (into `schema` when it is a pydantic model)."""

        def parse(message: BaseMessage) -> Any:
            return _parse_structured(message, schema)

        def parse_with_raw(message: BaseMessage) -> dict[str, Any]:
            try:
                return {"raw": message, "parsed": parse(message), "parsing_error": None}
            except ProviderError as exc:
                return {"raw": message, "parsed": None, "parsing_error": exc}

        return self | RunnableLambda(parse_with_raw if include_raw else parse)


def _finish_reason(tool_calls: list[ToolCall]) -> str:
    return "tool_calls" if tool_calls else "stop"


def _last_human_text(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return str(message.text)
    return ""


def _parse_structured(message: BaseMessage, schema: dict[str, Any] | type) -> Any:
    text = str(message.text).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        excerpt = text[:200] + ("…" if len(text) > 200 else "")
        raise ProviderError("invalid_structured_output", f"The reply is not JSON ({exc.msg}): {excerpt!r}") from exc
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            raise ProviderError(
                "invalid_structured_output", f"The reply does not match {schema.__name__}: {exc}"
            ) from exc
    return data


# =============================================================================
# Errors
# =============================================================================

_TIMEOUTS: tuple[type[BaseException], ...] = (
    openai.APITimeoutError,
    anthropic.APITimeoutError,
    httpx.TimeoutException,
    # openai and anthropic sit on httpx2 (a fork), whose exceptions share no base with httpx's.
    httpx2.TimeoutException,
    ModelTimeoutError,
    TimeoutError,
)
_MISCONFIGURED: tuple[type[BaseException], ...] = (httpx.UnsupportedProtocol, httpx2.UnsupportedProtocol)
_UNREACHABLE: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,
    anthropic.APIConnectionError,
    httpx.TransportError,
    httpx2.TransportError,
    ModelConnectionError,
    # ollama raises the built-in for a refused connection.
    ConnectionError,
)
_MAX_CAUSES = 5


def provider_error(exc: BaseException, *, secret: str | None = None) -> ProviderError:
    """The `ProviderError` for an exception raised by a provider call, with `secret` redacted."""
    if isinstance(exc, ProviderError):
        message = redact(exc.message, secret)
        return exc if message == exc.message else ProviderError(exc.code, message, transient=exc.transient)
    # LangChain integrations sometimes raise their own error from the client's; the cause says more.
    for candidate in _causes(exc):
        if (mapped := _map_exception(candidate, secret)) is not None:
            return mapped
    return ProviderError("provider_error", _shown(f"{type(exc).__name__}: {exc}", secret))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSES:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _map_exception(exc: BaseException, secret: str | None) -> ProviderError | None:
    if (status := _status_and_message(exc)) is not None:
        return _status_error(*status, secret)
    if isinstance(exc, _TIMEOUTS):
        detail = str(exc) or type(exc).__name__
        return ProviderError(
            "provider_timeout", _shown(f"The provider did not answer in time: {detail}", secret), transient=True
        )
    if isinstance(exc, _MISCONFIGURED):
        return ProviderError("provider_error", _shown(f"The provider's URL is not usable: {exc}", secret))
    if isinstance(exc, _UNREACHABLE):
        detail = str(exc) or type(exc).__name__
        return ProviderError(
            "provider_unreachable", _shown(f"Could not reach the provider: {detail}", secret), transient=True
        )
    if isinstance(exc, (ModelAuthenticationError, ModelPermissionDeniedError)):
        return ProviderError("provider_auth_failed", _shown(str(exc), secret))
    if isinstance(exc, ModelRateLimitError):
        return ProviderError("provider_rate_limited", _shown(str(exc), secret), transient=True)
    return None


def _status_and_message(exc: BaseException) -> tuple[int, str] | None:
    """The HTTP status and the provider's own error message, when the exception carries a response."""
    if isinstance(exc, openai.APIStatusError):
        # openai keeps the body's "error" object; its "message" is what OpenAI wrote.
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return exc.status_code, str(message or exc.message)
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code, str(exc.api_message or exc.message)
    if isinstance(exc, ollama.ResponseError) and exc.status_code > 0:
        return exc.status_code, str(exc.error)
    if isinstance(exc, (httpx.HTTPStatusError, httpx2.HTTPStatusError)):
        return exc.response.status_code, _response_message(exc.response)
    return None


def _response_message(response: httpx.Response | httpx2.Response) -> str:
    try:
        body = response.json()
    except Exception:  # An unread stream or a non-JSON body both mean "use the text".
        try:
            return response.text
        except Exception:  # A streamed body that was never read has no text either.
            return response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)


def _status_error(status: int, message: str, secret: str | None) -> ProviderError:
    if status in (401, 403):
        return ProviderError("provider_auth_failed", _shown(message or "The provider refused the key.", secret))
    if status == 429:
        return ProviderError(
            "provider_rate_limited", _shown(message or "The provider is rate limiting.", secret), transient=True
        )
    if status == 408:
        return ProviderError("provider_timeout", _shown(f"HTTP 408: {message}", secret), transient=True)
    return ProviderError("provider_error", _shown(f"HTTP {status}: {message}", secret), transient=status >= 500)


def _shown(message: str, secret: str | None) -> str:
    # Redact before cutting: a cut could leave a fragment too short to recognise as the secret.
    message = redact(message, secret)
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 1] + "…"


# =============================================================================
# Redaction
# =============================================================================

REDACTED = "***"
# Shorter fragments of a key are too likely to occur by chance in ordinary text.
MIN_SECRET_FRAGMENT = 8
# How vendors echo a key: "sk-...abcd", "sk-proj-****abcd", "…abcd".
_MASKED_KEY = re.compile(r"(?<![\w-])([\w-]*)(?:\.{3,}|…|\*{3,})([\w-]{2,})")


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret`, any fragment of it of 8+ characters, and masked forms of it replaced by ***."""
    if not secret or not text:
        return text

    def masked(match: re.Match[str]) -> str:
        prefix, tail = match.group(1), match.group(2)
        is_ours = len(tail) < len(secret) and secret.endswith(tail) and secret.startswith(prefix)
        return REDACTED if is_ours else match.group(0)

    text = _MASKED_KEY.sub(masked, text)
    spans = _secret_spans(text, secret)
    if not spans:
        return text
    parts: list[str] = []
    end = 0
    for start, stop in spans:
        parts += [text[end:start], REDACTED]
        end = stop
    parts.append(text[end:])
    return "".join(parts)


def _secret_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Merged spans of `text` covered by windows that occur in `secret`.

    Every fragment of the secret of at least `width` characters is a union of such windows, so the
    union of matching windows is exactly what must go; one pass, no quadratic search over fragments.
    """
    width = min(MIN_SECRET_FRAGMENT, len(secret))
    windows = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    spans: list[tuple[int, int]] = []
    for start in range(len(text) - width + 1):
        if text[start : start + width] in windows:
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], start + width)
            else:
                spans.append((start, start + width))
    return spans
