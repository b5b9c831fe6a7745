"""OpenAI, Azure OpenAI and OpenAI-compatible servers (Ollama, vLLM, LM Studio, demo) via the openai SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pydantic

from schleuse_common.contracts.providers import GenerateChunk, GenerateRequest, Usage
from schleuse_providers.adapters.base import error_for_status, http_client, parse_retry_after
from schleuse_providers.domain.errors import MalformedResponse, ProviderError, Unavailable, UpstreamTimeout
from schleuse_providers.domain.model import ModelSpec, ProviderSpec


class OpenAIAdapter:
    """One shared AsyncOpenAI / AsyncAzureOpenAI client per provider, streaming with usage."""

    def __init__(self, spec: ProviderSpec, api_key: str | None) -> None:
        self.spec = spec
        self._http = http_client(spec)
        self.client: openai.AsyncOpenAI
        if spec.kind == "azure":
            self.client = openai.AsyncAzureOpenAI(
                azure_endpoint=spec.base_url or "https://invalid.azure.example",
                api_key=api_key,
                api_version=spec.api_version or "2024-10-21",
                http_client=self._http,
                max_retries=0,  # retries and fallbacks are ours
            )
        else:
            self.client = openai.AsyncOpenAI(
                base_url=spec.base_url,
                api_key=api_key or "not-needed",  # local servers take any key
                http_client=self._http,
                max_retries=0,
            )

    async def aclose(self) -> None:
        await self.client.close()

    def upstream_model(self, model: ModelSpec) -> str:
        """Azure addresses a deployment; the model's upstream name is the deployment unless one is fixed."""
        if self.spec.kind == "azure" and self.spec.deployment and not model.upstream_model:
            return self.spec.deployment
        return model.upstream_model

    async def stream(self, model: ModelSpec, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        params = request_params(request)
        params["model"] = self.upstream_model(model)
        finished = False
        try:
            stream = await self.client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                async for chunk in stream:
                    usage = _usage(chunk.usage)
                    if not chunk.choices:
                        if usage is not None:
                            yield GenerateChunk(usage=usage)
                        continue
                    choice = chunk.choices[0]
                    delta = choice.delta
                    calls = [c.model_dump(exclude_none=True) for c in delta.tool_calls] if delta.tool_calls else None
                    if delta.content or calls or choice.finish_reason or usage:
                        finished = finished or choice.finish_reason is not None
                        yield GenerateChunk(
                            delta=delta.content or "",
                            tool_calls=calls,
                            finish_reason=choice.finish_reason,
                            usage=usage,
                        )
        except openai.APIStatusError as exc:
            raise _status_error(exc, self.spec.name) from None
        except (openai.APITimeoutError, httpx2.TimeoutException):
            raise UpstreamTimeout(f"timeout talking to provider {self.spec.name}", provider=self.spec.name) from None
        except (openai.APIConnectionError, httpx2.TransportError):
            raise Unavailable(f"provider {self.spec.name} unreachable", provider=self.spec.name) from None
        except (json.JSONDecodeError, pydantic.ValidationError, openai.APIResponseValidationError, KeyError):
            raise MalformedResponse(
                f"malformed stream from provider {self.spec.name}", provider=self.spec.name
            ) from None
        if not finished:
            raise MalformedResponse(f"stream from provider {self.spec.name} ended early", provider=self.spec.name)


def request_params(request: GenerateRequest) -> dict[str, Any]:
    """The provider-neutral request in OpenAI's chat.completions shape."""
    params: dict[str, Any] = {"messages": [m.model_dump(exclude_none=True) for m in request.messages]}
    for name in ("temperature", "max_tokens", "top_p", "stop", "tools"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.tool_choice is not None:
        params["tool_choice"] = request.tool_choice
    return params


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
    )


def _status_error(exc: openai.APIStatusError, provider: str) -> ProviderError:
    retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
    return error_for_status(exc.status_code, f"provider {provider} answered {exc.status_code}", provider, retry_after)
