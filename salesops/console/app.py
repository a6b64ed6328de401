"""The planner's console: one server-rendered page, its scripts, plotly.js from the installed package, and
the proxy to the services. It imports no service; it talks to them over HTTP like any other client."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from salesops.console.proxy import proxy_router
from salesops.console.settings import ConsoleSettings
from shared.headers import API_SECURITY_HEADERS, SecurityHeaders
from shared.http import ObserveRequests
from shared.metrics import HttpMetrics

HERE = Path(__file__).parent


# plotly.js as shipped inside the `plotly` wheel: the console works offline and never reaches a CDN.
# Located without importing plotly (its Python side is not needed here).
def _plotly_js() -> Path:
    """plotly.js as shipped inside the `plotly` wheel, so the console works offline and never reaches a CDN;
    found without importing plotly, whose Python side the console does not need."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed; it ships the console's charting library")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


PLOTLY_JS = _plotly_js()


def _plotly_style_hashes() -> list[str]:
    """CSP hashes of the style elements plotly.js inserts: an empty one it then fills through the CSSOM (which a
    policy does not restrict) and the stylesheets it carries as string literals. No other inline style runs."""
    literals = re.findall(r"""\.textContent=(?:'([^'\\]*)'|"([^"\\]*)")""", PLOTLY_JS.read_text(encoding="utf-8"))
    texts = {"", *(single or double for single, double in literals)}
    return sorted(f"'sha256-{base64.b64encode(hashlib.sha256(t.encode()).digest()).decode()}'" for t in texts)


# The page runs only the console's own script files (no inline script, no eval) and talks only to its own origin;
# nothing may frame it. Proxied API responses keep the services' stricter policy.
CONSOLE_SECURITY_HEADERS = {
    **API_SECURITY_HEADERS,
    "content-security-policy": (
        f"default-src 'self'; script-src 'self'; style-src 'self' {' '.join(_plotly_style_hashes())}; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}


def build_app(settings: ConsoleSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`transport` lets tests put a fake upstream behind the proxy."""
    settings = settings or ConsoleSettings()
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout_s),
            transport=transport,
            follow_redirects=False,
        ) as client:
            app.state.http = client
            yield

    app = FastAPI(title="salesops console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.upstreams = settings.service_urls()
    metrics = HttpMetrics()
    app.state.metrics = metrics
    app.add_middleware(ObserveRequests, metrics=metrics)
    app.add_middleware(SecurityHeaders, headers=CONSOLE_SECURITY_HEADERS)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(proxy_router())

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            "index.html",
            {"refresh_ms": int(settings.refresh_interval_s * 1000), "services": list(app.state.upstreams)},
        )

    @app.get("/vendor/plotly.min.js")
    async def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The console has no dependencies of its own: ready as soon as it answers (the launcher waits on this).
    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    # Requests served (pages, assets, and the proxied API calls by upstream route), as every service counts them.
    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
