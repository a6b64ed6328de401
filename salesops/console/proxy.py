"""Same-origin reverse proxy `/api/{service}/{path}` to the services, so the browser needs no CORS.

Responses stream through unbuffered (Server-Sent Events included); the caller's `Authorization` is passed on
untouched, so every request is authorised by the service itself with the caller's own key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

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


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


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
        headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request.headers.get(name))}
        streaming = _wants_stream(request, path)
        timeout = httpx.Timeout(client.timeout.read, read=None) if streaming else client.timeout
        upstream_request = client.build_request(
            request.method,
            f"{base}/{path}",
            params=httpx.QueryParams(request.url.query),
            headers=headers,
            content=(await request.body()) or None,
            timeout=timeout,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
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
        if streaming:
            # Tells any buffering proxy in front of the console to pass events on at once.
            response_headers["x-accel-buffering"] = "no"
            response_headers.setdefault("cache-control", "no-cache")
        return StreamingResponse(body(), status_code=upstream.status_code, headers=response_headers)

    return router
