"""The console's page and scripts as files: every module a script imports is served and shipped in the wheel."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import httpx
import pytest

from salesops.console import ConsoleSettings, build_app

CONSOLE = Path(__file__).resolve().parents[3] / "salesops" / "console"
STATIC = CONSOLE / "static"
IMPORT = re.compile(r"""^import\s.*?\sfrom\s+["'](\.{1,2}/[^"']+)["'];""", re.MULTILINE | re.DOTALL)


@pytest.fixture
async def console() -> AsyncIterator[httpx.AsyncClient]:
    # No upstream is called: only the console's own files are asked for.
    app = build_app(ConsoleSettings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            yield client


def imported_modules() -> set[PurePosixPath]:
    """Every static module reachable from the page's entry script, as paths under /static."""
    found: set[PurePosixPath] = set()
    pending = [PurePosixPath("console.js")]
    while pending:
        module = pending.pop()
        if module in found:
            continue
        found.add(module)
        for target in IMPORT.findall((STATIC / module).read_text(encoding="utf-8")):
            resolved = PurePosixPath(*[p for p in (module.parent / target).parts if p != "."])
            pending.append(resolved)
    return found


def test_the_entry_script_reaches_every_module_and_every_module_is_used() -> None:
    reachable = imported_modules()
    on_disk = {PurePosixPath(p.relative_to(STATIC).as_posix()) for p in STATIC.rglob("*.js")}
    assert reachable == on_disk
    for module in reachable:
        assert (STATIC / module).is_file(), module


def test_the_wheel_ships_every_static_file_and_template() -> None:
    patterns = tomllib.loads((CONSOLE.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "salesops"
    ]
    shipped = [p for p in (CONSOLE.parent).rglob("console/*/**/*") if p.is_file() and "__pycache__" not in p.parts]
    assert shipped
    for path in shipped:
        relative = PurePosixPath(path.relative_to(CONSOLE.parent).as_posix())
        # setuptools globs do not cross directories: a pattern matches a path of as many parts.
        matched = [p for p in patterns if len(PurePosixPath(p).parts) == len(relative.parts) and relative.match(p)]
        assert matched, f"{relative} is not in the wheel"


async def test_the_page_loads_its_script_as_a_module_and_every_module_is_served_as_javascript(
    console: httpx.AsyncClient,
) -> None:
    page = (await console.get("/")).text
    assert '<script src="/static/console.js" type="module"></script>' in page
    for module in imported_modules():
        response = await console.get(f"/static/{module}")
        assert response.status_code == 200, module
        assert response.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
        assert "script-src 'self';" in response.headers["content-security-policy"]
