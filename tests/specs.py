"""The official AsyncAPI 3.0.0 JSON Schema, from the AsyncAPI Initiative's `@asyncapi/specs` npm package.

No PyPI package ships it, so npm installs the pinned release into the test session's temporary directory;
without npm (or its registry) the tests that need it are skipped, saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
# The bundled schema with local `#/definitions/...` references only, so nothing is fetched while validating.
SCHEMA_FILE = Path("node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json")


def official_asyncapi_schema(directory: Path) -> dict[str, Any]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the official AsyncAPI JSON Schema comes from @asyncapi/specs")
    if not (directory / SCHEMA_FILE).is_file():
        options = ["--no-save", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline"]
        installed = subprocess.run(
            [npm, "install", "--prefix", str(directory), *options, SPECS_PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0:
            pytest.skip(f"npm could not install {SPECS_PACKAGE}: {installed.stderr.strip()[-500:]}")
    schema: dict[str, Any] = json.loads((directory / SCHEMA_FILE).read_text())
    assert schema["title"] == "AsyncAPI 3.0.0 schema."
    return schema
