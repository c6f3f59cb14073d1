"""Typed facts the task modules share: a read-only command each, and the parser of its output.

A module names the fact it decides from (``Module.facts``); the engine batches the command with
the other upcoming tasks' and hands the parsed value to ``plan``. Facts that only one module
reads live beside it (``file.FileFacts``); these are the ones several modules read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .base import Fact
from .shell import FileState, parse_stat, quote

_END = ".pv-end"
T = TypeVar("T")


@dataclass(frozen=True)
class PathState(Fact[FileState]):
    """A path's type, mode, owner, group, size (and sha256 of a regular file with ``checksum``)."""

    path: str
    checksum: bool = False

    def command(self) -> str:
        return f"pv_stat {quote(self.path)}{' sum' if self.checksum else ''}"

    def parse(self, output: str) -> FileState:
        return parse_stat((output or "absent").splitlines()[0] if output else "absent")


@dataclass(frozen=True)
class PathStates(Fact[list[FileState]]):
    """Several paths' states in one read, in order; ``checksum`` names the ones to checksum."""

    paths: Sequence[str]
    checksum: Sequence[bool] = ()

    def command(self) -> str:
        sums = list(self.checksum) or [False] * len(self.paths)
        return "\n".join(f"pv_stat {quote(p)}{' sum' if s else ''}" for p, s in zip(self.paths, sums, strict=True))

    def parse(self, output: str) -> list[FileState]:
        lines = output.splitlines()
        if len(lines) != len(self.paths):
            raise ValueError(f"expected {len(self.paths)} path states, got {len(lines)}")
        return [parse_stat(line) for line in lines]


@dataclass(frozen=True)
class TextFile:
    """A file's state and its text (None when it is absent)."""

    state: FileState
    text: str | None


@dataclass(frozen=True)
class FileText(Fact[TextFile]):
    """A path's state and, for a regular file, its whole content (trailing newlines kept)."""

    path: str

    def command(self) -> str:
        return f"pv_stat {quote(self.path)}\npv_cat {quote(self.path)}\nprintf '\\n{_END}\\n'"

    def absent_path(self) -> str | None:
        return self.path

    def answer(self, state_line: str, text: str) -> str:
        """The output ``command`` gives for a regular file with that ``pv_stat`` line and ``text``."""
        return f"{state_line}\npresent\n{text}\n{_END}\n"

    def parse(self, output: str) -> TextFile:
        text = output or "absent\nabsent\n\n" + _END
        stat_line, _, rest = text.partition("\n")
        marker, _, content = rest.partition("\n")
        content = content.rstrip("\n")
        content = content.removesuffix(_END)
        content = content[:-1] if content.endswith("\n") else content
        return TextFile(parse_stat(stat_line), content if marker == "present" else None)


@dataclass(frozen=True)
class FileBody(Fact["str | None"]):
    """A readable regular file's content, or None (absent, not a file, or not readable)."""

    path: str

    def command(self) -> str:
        q = quote(self.path)
        return f"if [ -f {q} ] && [ -r {q} ]; then echo present; cat -- {q}; else echo unreadable; fi"

    def parse(self, output: str) -> str | None:
        marker, _, body = output.partition("\n")
        return body if marker == "present" else None


@dataclass(frozen=True)
class Probe(Fact[T]):
    """A module's own fact: the command it reads with, and the parser that types the output."""

    text: str
    parser: Callable[[str], T]

    def command(self) -> str:
        return self.text

    def parse(self, output: str) -> T:
        return self.parser(output)
