"""Optional sampling profiles (`--profile`): py-spy records a service process while a measure loads it, and
the collapsed stacks are summarised as the share of busy samples spent in each library and the functions
where the samples land. py-spy comes with the dev extra; without it (or without ptrace rights) the measure
runs as usual and reports why there is no profile."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_GENERATED = re.compile(r"^<(\w+)")


def frame_package(frame: str) -> str:
    """The library or project part a collapsed-stack frame `function (module/path.py:line)` belongs to:
    py-spy names files by their path below site-packages or the source root, so the first part is the
    package (`services/<name>` for a service); the standard library and frozen modules are `python`."""
    match = _FRAME.match(frame)
    path = match.group("file") if match else frame
    if generated := _GENERATED.match(path):
        # `<frozen runpy>`, `<string>`; code a library generates names it: `<sqlalchemy generated ...>`.
        word = generated.group(1)
        return "python" if word in {"frozen", "string", "module"} else word
    parts = path.split("/")
    if parts[0] == "services" and len(parts) > 2:
        return f"services.{parts[1]}"
    top = parts[0].removesuffix(".py")
    return "python" if top in sys.stdlib_module_names else top


def frame_function(frame: str) -> str:
    """`function (file)` without the line number, the file shortened to its last two parts."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    parts = match.group("file").split("/")
    return f"{match.group('function')} ({'/'.join(parts[-2:])})"


@dataclass
class ProfileSummary:
    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_by_package: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)

    def as_json(self, top: int = 12) -> dict[str, Any]:
        if not self.samples:
            return {"samples": 0}
        return {
            "samples": self.samples,
            "self_by_package": {
                k: round(v / self.samples, 3)
                for k, v in self.self_by_package.most_common(top)
                if v / self.samples >= 0.01
            },
            "inclusive_by_package": {
                k: round(v / self.samples, 3)
                for k, v in self.inclusive.most_common(2 * top)
                if 0.01 <= v / self.samples < 0.99
            },
            "top_self": {k: round(v / self.samples, 3) for k, v in self.leaves.most_common(top)},
        }


def summarise(collapsed: str) -> ProfileSummary:
    """Collapsed stacks (`frame;frame;... count` per line, py-spy's raw format) as shares of the samples:
    per package those with a frame of it anywhere on the stack (inclusive; packages on every stack, like
    the event loop, are left out of the report) and those whose leaf is in it (self), per function those it
    was the leaf of."""
    summary = ProfileSummary()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        summary.samples += count
        for package in {frame_package(f) for f in frames}:
            summary.inclusive[package] += count
        summary.self_by_package[frame_package(frames[-1])] += count
        summary.leaves[frame_function(frames[-1])] += count
    return summary


class Profiler:
    """Records one process at a time with py-spy for a fixed number of seconds."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.out_dir = out_dir
        self.name = name
        self.profiles: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._launched = asyncio.Event()
        self._error: str | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))

    def start(self, label: str, pid: int, seconds: float) -> None:
        """Start recording the process `pid` for `seconds` (returns at once; `finish` awaits the recording)."""
        binary = self.binary()
        if binary is None:
            self._error = "py-spy is not installed (pip install -e '.[dev]')"
            return
        name = f"{self.name}-{label}"
        out = self.out_dir / f"{name}.txt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "record", "--format", "raw", "--rate", "100", "--nonblocking"]
        argv += ["--duration", str(max(1, round(seconds))), "--pid", str(pid), "--output", str(out)]
        self._task = asyncio.create_task(self._record(name, out, argv))

    async def _record(self, name: str, out: Path, argv: list[str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
            )
        except OSError as exc:
            self.profiles[name] = {"error": repr(exc)}
            return
        else:
            self._process = process
        finally:
            self._launched.set()
        _, stderr = await process.communicate()
        # py-spy names frames as it reads them from memory: a stray byte must not cost the measure.
        text = await asyncio.to_thread(lambda: out.read_text(errors="replace") if out.exists() else None)
        if process.returncode != 0 or text is None:
            self.profiles[name] = {"error": stderr.decode()[-500:] or f"py-spy exited with {process.returncode}"}
            return
        self.profiles[name] = {"file": str(out), **summarise(text).as_json()}

    async def finish(self, *, stop: bool = False) -> None:
        """Await the recording; with `stop`, end it now (py-spy writes what it has on SIGINT), for work
        whose length is not known beforehand."""
        if self._task is None:
            return
        if stop:
            await self._launched.wait()
            if self._process is not None and self._process.returncode is None:
                self._process.send_signal(signal.SIGINT)
        await self._task
        self._task = None
        self._process = None
        self._launched.clear()

    def summary(self) -> dict[str, Any] | None:
        if self._error is not None:
            return {"error": self._error}
        return self.profiles or None
