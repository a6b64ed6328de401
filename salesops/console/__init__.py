"""The planner's console: a small web app over the services' APIs (`salesops console`)."""

from salesops.console.app import build_app
from salesops.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "build_app"]
