"""The one error type users see: a one-line message naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class AdvnormError(Exception):
    """A user-facing error. The CLI prints ``str(err)`` on one line and exits non-zero."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = " ".join(str(problem).split())  # always one line
        self.path = None if path is None else str(path)
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


class AdvnormWarning(UserWarning):
    """Something a user should look at before trusting a result (the CLI prints it on one line;
    ``--strict`` turns it into an error)."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = " ".join(str(problem).split())
        self.path = None if path is None else str(path)
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


def one_line(text: object, limit: int = 160) -> str:
    """``text`` (an exception's message, say) on one line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
