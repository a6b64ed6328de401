"""The whole system as `salesops up` runs it (console included), and headless Chromium driving the console."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port_base

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OFFSETS = {"promotion": 1, "fulfillment": 2, "returns": 3, "planning": 4, "console": 5}


def wait_for(check: Callable[[], Any], *, timeout: float, message: str, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} (last value: {last!r})")


def wait_in_page(page: Any, function: str, *, arg: Any = None, timeout: float = 30, message: str = "") -> Any:
    """`page.wait_for_function` without its in-page polling, which evaluates strings with `eval`: the console's
    content security policy forbids that, and must go on forbidding it while the tests run."""
    return wait_for(lambda: page.evaluate(function, arg), timeout=timeout, message=message or function)


@dataclass
class Stack:
    port_base: int
    data_dir: Path
    keys: dict[str, str]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port_base + OFFSETS[service]}"

    def client(self, service: str, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url(service), headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=30
        )


# Package scope: the system runs for the tests of this folder and stops before the rest of the suite.
@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port_base = free_port_base()
    data_dir = tmp_path_factory.mktemp("salesops-up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
    log = (data_dir / "up.log").open("ab")
    up = subprocess.Popen(
        [sys.executable, "-m", "salesops", "up", "--port-base", str(port_base), "--data-dir", str(data_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready(offset: int) -> bool:
        assert up.poll() is None, f"salesops up exited; see {data_dir / 'up.log'}"
        try:
            return httpx.get(f"http://127.0.0.1:{port_base + offset}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        for offset in OFFSETS.values():
            wait_for(lambda o=offset: ready(o), timeout=120, message=f"port-base+{offset} never became ready")
        keys = {k["name"]: k["key"] for k in json.loads((data_dir / "api-keys.json").read_text())["keys"]}
        yield Stack(port_base, data_dir, keys)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        log.close()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread while it is open,
# which would stop the asyncio tests that run after these.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console_page(browser: Any, stack: Stack) -> Iterator[Callable[..., Any]]:
    """Opens the console (for a SKU, or the exceptions inbox), signed in with a generated key, each page in a
    context of its own (a second browser, another width); pages with `axe` get axe-core before any page script."""
    contexts: list[Any] = []
    errors: list[str] = []
    refused: list[str] = []

    def note_console(message: Any) -> None:
        # Chromium reports what the page's content security policy blocked on the console only.
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    def open_console(sku: str = "", *, role: str = "planner", width: int = 1400, axe: Path | None = None) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 1000}, accept_downloads=True)
        contexts.append(context)
        if axe is not None:
            # Injected by the browser, not as a page script: the content security policy stays as strict as it is.
            context.add_init_script(path=str(axe))
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", note_console)
        page.goto(f"{stack.url('console')}/" + (f"?sku={sku}" if sku else ""))
        page.fill("#api-key", stack.keys[role])
        page.click("#key-form button[type=submit]")
        wait_in_page(page, "() => document.getElementById('whoami').textContent.startsWith('Signed in as')")
        return page

    yield open_console
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not refused, f"the page needs something its content security policy refuses: {refused}"


AXE_CORE_VERSION = "4.14.1"


@pytest.fixture(scope="session")
def axe_core() -> Path:
    """axe-core from the npm registry, installed once into a cache directory; skipped only without npm."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the accessibility checks need axe-core from the npm registry")
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "salesops" / f"axe-core-{AXE_CORE_VERSION}"
    )
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(cache),
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                f"axe-core@{AXE_CORE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0 and script.is_file(), f"npm could not install axe-core: {result.stderr}"
    return script


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now, with the offending elements."""
    found: list[dict[str, Any]] = page.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(' '))})))"""
    )
    return found


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
