"""Security headers on every HTTP response, as a plain ASGI middleware (no task group, no copied response), and
CORS for the origins a deployment allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The APIs answer JSON only: nothing of theirs is ever to be run, styled, sniffed into HTML or framed by a page.
API_SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """Adds `headers` to every response that does not set them itself, so a page with needs of its own (the
    API docs, a proxied response) keeps its own policy."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = API_SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = message.get("headers", [])
                present = {name.lower() for name, _ in own}
                extra = [header for header in self.headers if header[0] not in present]
                message = {**message, "headers": [*own, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: Starlette, origins: Sequence[str]) -> None:
    """Let pages on `origins` call the app from a browser; nothing when there are none (browsers then refuse every
    cross-origin call). Browsers send the API key (or a stream token) themselves, never cookies: no credentials
    mode. Install it last, so that it is the outermost middleware and answers preflights first."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        expose_headers=["Location", "WWW-Authenticate"],
        max_age=600,
    )
