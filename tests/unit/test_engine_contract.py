"""The engine's contract with its modules: what `provision modules` shows, check mode owned by the engine."""

from __future__ import annotations

import pytest

from provision.cli import main

pytestmark = pytest.mark.unit


def test_modules_name_shows_each_arguments_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modules", "command"]) == 0
    out = capsys.readouterr().out
    assert "creates" in out and "skip when this path exists" in out


def test_modules_name_falls_back_to_the_docstring_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modules", "file"]) == 0
    out = capsys.readouterr().out
    assert "what a link points to (state: link)" in out
