"""A fake bedrock-runtime: Converse JSON and ConverseStream in the AWS event-stream binary framing.

Frame (per the AWS event-stream spec): total length (4) | headers length (4) | prelude CRC32 (4) |
headers | payload | message CRC32 (4); header = name length (1) | name | type 7 (string) |
value length (2) | value.
"""

import json
import re
import struct
import zlib

from .common import FakeServer, Recorded, behaviour, respond, stream

ACCESS_KEY = "AKIAFAKE0123456789AB"
PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
ANSWER = ["Moin, ", "hier ist ", "Bedrock."]


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v


def frame(headers: dict[str, str], payload: bytes, *, corrupt: bool = False) -> bytes:
    """Encode one event-stream message."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return body + struct.pack("!I", crc ^ 1 if corrupt else crc)


def event(kind: str, data: dict, **kw) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(data).encode(), **kw)


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def _error(send, status: int, kind: str, message: str, retry_after: str | None = None):
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    if retry_after:
        headers["retry-after"] = retry_after
    return respond(send, status, {"message": message}, headers)


class BedrockFake(FakeServer):
    async def handle(self, request: Recorded, send) -> None:
        match = PATH.match(request.path)
        if not match:
            await _error(send, 404, "UnknownOperationException", "no such operation")
            return
        if f"Credential={ACCESS_KEY}/" not in request.headers.get("authorization", ""):
            await _error(
                send, 403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
            return
        body = request.json()
        content = body["messages"][-1]["content"]
        mode = behaviour(json.dumps(content))
        if mode == "429":
            await _error(send, 429, "ThrottlingException", "Too many requests", retry_after="3")
            return
        if mode == "500":
            await _error(send, 500, "InternalServerException", "internal")
            return
        if mode == "503":
            await _error(send, 503, "ServiceUnavailableException", "unavailable")
            return
        if mode == "slow":
            await self.slow()
        if match.group(2) == "converse":
            await self.converse(body, mode, send)
        else:
            await stream(send, self.events(body, mode), b"application/vnd.amazon.eventstream")

    async def converse(self, body: dict, mode: str | None, send) -> None:
        content: list[dict] = [{"text": "".join(ANSWER)}]
        stop = "end_turn"
        if mode == "tool" and body.get("toolConfig"):
            name = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
            content.append({"toolUse": {"toolUseId": "tooluse_fake1", "name": name, "input": {"city": "Berlin"}}})
            stop = "tool_use"
        await respond(
            send,
            200,
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
                "metrics": {"latencyMs": 5},
            },
        )

    def events(self, body: dict, mode: str | None) -> list[bytes]:
        parts = [event("messageStart", {"role": "assistant"})]
        for piece in ANSWER:
            parts.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
        if mode == "malformed":
            return [*parts, event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}, corrupt=True)]
        if mode == "midstream_error":
            return [*parts, exception("modelStreamErrorException", "model stream failed")]
        if mode == "midstream_throttle":
            return [*parts, exception("throttlingException", "slow down")]
        parts.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        stop = "end_turn"
        if mode == "tool" and body.get("toolConfig"):
            stop = "tool_use"
            name = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
            start = {"toolUse": {"toolUseId": "tooluse_fake1", "name": name}}
            parts.append(event("contentBlockStart", {"contentBlockIndex": 1, "start": start}))
            for piece in ('{"city": ', '"Berlin"}'):
                delta = {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}}
                parts.append(event("contentBlockDelta", delta))
            parts.append(event("contentBlockStop", {"contentBlockIndex": 1}))
        parts.append(event("messageStop", {"stopReason": stop}))
        usage = {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39}
        parts.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 5}}))
        return parts
