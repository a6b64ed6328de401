"""Same-origin reverse proxy `/api/{service}/{path}` to the services, so the browser needs no CORS.

Request and response bodies stream through unbuffered (Server-Sent Events included); the caller's
`Authorization` is passed on untouched, so every request is authorised by the service itself with the caller's own
key. A request body is refused before it is read when it has no key or declares more than the limit, and as soon
as a streamed one passes the limit, so the console holds at most one chunk of it at a time. Redirects point at
the console's own paths: the services' internal addresses never reach the browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

# Request headers worth forwarding; anything else (cookies, Host, hop-by-hop headers) stays at the console.
FORWARDED_REQUEST_HEADERS = (
    "authorization",
    "accept",
    "content-type",
    "last-event-id",
    "traceparent",
    "if-none-match",
)
# Response headers that describe the connection rather than the content are not copied back.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class BodyTooLarge(Exception):
    """A streamed request body passed the limit; raised inside the upload so that it stops at once."""


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _too_large(limit: int) -> JSONResponse:
    return _problem(413, "Content Too Large", f"the request body exceeds {limit} bytes")


def _has_body(request: Request) -> bool:
    declared = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (declared is not None and declared != "0")


async def _bounded(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        if chunk:
            yield chunk


def _console_location(location: str, service: str, upstreams: dict[str, str]) -> str:
    """Where a service's redirect points, as a path of the console: a service answers with its own address (a
    trailing-slash redirect is absolute), which is internal and would send the browser around the console."""
    target = httpx.URL(location)
    if target.is_relative_url:
        return f"/api/{service}{location}" if location.startswith("/") and not location.startswith("//") else location
    # The answering service first: two names may share one address.
    for name, base in sorted(upstreams.items(), key=lambda item: item[0] != service):
        upstream = httpx.URL(base)
        prefix = upstream.path.rstrip("/")
        same_origin = (target.scheme, target.host, target.port) == (upstream.scheme, upstream.host, upstream.port)
        if same_origin and (target.path == prefix or target.path.startswith(f"{prefix}/")):
            rest = target.raw_path.decode("ascii")[len(prefix) :]
            return f"/api/{name}{rest if rest.startswith('/') else '/' + rest}"
    return location


def _wants_stream(request: Request, path: str) -> bool:
    return "text/event-stream" in request.headers.get("accept", "") or path.rstrip("/").endswith("/stream")


def proxy_router() -> APIRouter:
    router = APIRouter()

    @router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
    async def proxy(service: str, path: str, request: Request) -> Response:
        upstreams: dict[str, str] = request.app.state.upstreams
        base = upstreams.get(service)
        if base is None:
            return _problem(404, "Not Found", f"unknown service '{service}'; known: {', '.join(upstreams)}")
        client: httpx.AsyncClient = request.app.state.http
        limit: int = request.app.state.settings.max_request_bytes
        headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request.headers.get(name))}
        content: AsyncIterator[bytes] | None = None
        if _has_body(request):
            # No service accepts a body without a key: not a byte of it is read.
            if not request.headers.get("authorization", "").strip():
                return _problem(
                    401,
                    "Unauthorized",
                    "an API key is required: Authorization: Bearer <key>",
                    {"www-authenticate": "Bearer"},
                )
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit():
                if int(declared) > limit:
                    return _too_large(limit)
                # Declared, so the service can refuse it early too; httpx then sends it as is, not chunked.
                headers["content-length"] = declared
            content = _bounded(request.stream(), limit)
        streaming = _wants_stream(request, path)
        timeout = httpx.Timeout(client.timeout.read, read=None) if streaming else client.timeout
        upstream_request = client.build_request(
            request.method,
            f"{base}/{path}",
            params=httpx.QueryParams(request.url.query),
            headers=headers,
            content=content,
            timeout=timeout,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except BodyTooLarge:
            return _too_large(limit)
        except ClientDisconnect:
            return _problem(400, "Bad Request", "the request body ended before it was complete")
        except httpx.TimeoutException:
            return _problem(504, "Gateway Timeout", f"the {service} service did not answer in time")
        except httpx.HTTPError as exc:
            return _problem(502, "Bad Gateway", f"the {service} service is not reachable: {type(exc).__name__}")

        async def body() -> AsyncIterator[bytes]:
            # Closing in `finally` releases the upstream connection when the browser goes away mid-stream.
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                return
            finally:
                # Shielded: on a browser disconnect this runs inside a cancelled scope and must still close.
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()

        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        if "location" in response_headers:
            response_headers["location"] = _console_location(response_headers["location"], service, upstreams)
        if streaming:
            # Tells any buffering proxy in front of the console to pass events on at once.
            response_headers["x-accel-buffering"] = "no"
            response_headers.setdefault("cache-control", "no-cache")
        return StreamingResponse(body(), status_code=upstream.status_code, headers=response_headers)

    return router
