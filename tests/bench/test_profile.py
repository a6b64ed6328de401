"""Profile summaries: collapsed py-spy stacks become shares per package (inclusive and self) and per leaf."""

from __future__ import annotations

import pytest

from salesops.bench.profile import frame_function, frame_package, summarise

STACKS = "\n".join(
    [
        "run (asyncio/runners.py:118);handle (shared/service.py:150);execute (sqlalchemy/engine/base.py:1400);"
        "_do_execute (asyncpg/connection.py:1800) 6",
        "run (asyncio/runners.py:118);create (services/returns_service/handlers.py:40);"
        "validate_python (pydantic/type_adapter.py:300) 3",
        "run (asyncio/runners.py:118);values (<sqlalchemy generated _generative() wrapper for x>:2) 1",
        "_run_module_as_main (<frozen runpy>:198);dumps (json/__init__.py:231) 2",
        "not a stack line",
    ]
)


@pytest.mark.parametrize(
    ("frame", "package"),
    [
        ("_do_execute (asyncpg/connection.py:1800)", "asyncpg"),
        ("create (services/returns_service/handlers.py:40)", "services.returns_service"),
        ("handle (shared/service.py:150)", "shared"),
        ("run (asyncio/runners.py:118)", "python"),
        ("__aexit__ (contextlib.py:219)", "python"),
        ("_run_code (<frozen runpy>:88)", "python"),
        ("values (<sqlalchemy generated _generative() wrapper for x>:2)", "sqlalchemy"),
    ],
)
def test_a_frame_is_attributed_to_its_package(frame: str, package: str) -> None:
    assert frame_package(frame) == package


def test_a_function_is_named_without_its_line() -> None:
    assert frame_function("execute (sqlalchemy/engine/base.py:1400)") == "execute (engine/base.py)"
    assert frame_function("odd") == "odd"


def test_shares_per_package_and_leaf() -> None:
    summary = summarise(STACKS)

    assert summary.samples == 12
    report = summary.as_json()
    assert report["self_by_package"] == {"asyncpg": 0.5, "pydantic": 0.25, "python": 0.167, "sqlalchemy": 0.083}
    # Inclusive: a package counts once per stack however many of its frames it has; `python` is on every
    # stack and so left out.
    assert report["inclusive_by_package"]["sqlalchemy"] == pytest.approx(7 / 12, abs=1e-3)
    assert report["inclusive_by_package"]["services.returns_service"] == 0.25
    assert "python" not in report["inclusive_by_package"]
    assert report["top_self"]["_do_execute (asyncpg/connection.py)"] == 0.5
    assert summarise("").as_json() == {"samples": 0}
