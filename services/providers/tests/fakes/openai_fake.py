"""A fake OpenAI / Azure OpenAI API: auth and URL shape checked, answers from the demo app (JSON + SSE).

Errors and stream faults come from the demo markers (`[[demo:fail429]]`, `[[demo:malformed]]`, ...).
"""

import re

from schleuse_providers.demo_server import DemoApp

from .common import FakeServer, Recorded, respond

API_KEY = "sk-test-abcdefghijklmnopwxyz"
AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


class OpenAIFake(FakeServer):
    def __init__(self, *, azure: bool = False, api_key: str = API_KEY) -> None:
        super().__init__()
        self.azure = azure
        self.api_key = api_key
        self.demo = DemoApp()

    async def handle(self, request: Recorded, send) -> None:
        key = request.headers.get("api-key") if self.azure else request.headers.get("authorization", "")[7:]
        if key != self.api_key:
            error = {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
            await respond(send, 401, error)
            return
        if self.azure and (not AZURE_PATH.match(request.path) or "api-version=" not in request.query):
            await respond(send, 404, {"error": {"code": "DeploymentNotFound", "message": "no deployment"}})
            return
        body = request.body

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": request.method, "path": "/v1/chat/completions"}
        await self.demo(scope, receive, send)
