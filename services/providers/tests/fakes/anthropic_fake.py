"""A fake Anthropic Messages API speaking the real SSE event sequence."""

import json

from .common import FakeServer, Recorded, behaviour, respond, stream

API_KEY = "sk-ant-test-0123456789wxyz"
ANSWER = ["Guten ", "Tag, ", "hier ist Claude."]


def _error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class AnthropicFake(FakeServer):
    async def handle(self, request: Recorded, send) -> None:
        if request.path != "/v1/messages":
            await respond(send, 404, _error("not_found_error", "no such route"))
            return
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (request.headers.get("x-api-key"), bearer):  # SDK versions differ in the header
            await respond(send, 401, _error("authentication_error", "invalid x-api-key"))
            return
        body = request.json()
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else json.dumps(last)
        mode = behaviour(text)
        if mode == "429":
            await respond(send, 429, _error("rate_limit_error", "slow down"), {"retry-after": "7"})
            return
        if mode == "500":
            await respond(send, 500, _error("api_error", "internal"))
            return
        if mode == "529":
            await respond(send, 529, _error("overloaded_error", "overloaded"))
            return
        if mode == "slow":
            await self.slow()
        await stream(send, self.events(body, mode))

    def events(self, body: dict, mode: str | None) -> list[bytes]:
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 21, "output_tokens": 1, "cache_read_input_tokens": 4},
            },
        }
        events = [_event("message_start", start)]
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        events.append(_event("ping", {"type": "ping"}))
        for piece in ANSWER:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            events.append(_event("content_block_delta", delta))
        if mode == "malformed":
            return [*events, b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n']
        if mode == "midstream_error":
            return [*events, _event("error", _error("overloaded_error", "Overloaded"))]
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stop_reason = "end_turn"
        if mode == "tool" and body.get("tools"):
            stop_reason = "tool_use"
            name = body["tools"][0]["name"]
            events.append(
                _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 1,
                        "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {}},
                    },
                )
            )
            for part in ('{"city": ', '"Berlin"}'):
                events.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 1,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                )
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 1}))
        events.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 12},
                },
            )
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events
