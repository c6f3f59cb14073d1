"""How the CLI shows errors: a clean paragraph, a traceback only at -vv, never a secret."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from provision.errors import InventoryError, Source, TaskFailed
from provision.output import render_error
from provision.secrets import Redactor

pytestmark = pytest.mark.unit

SECRET = "root-pw-9f8e7d"


def render(error: BaseException, verbosity: int = 0) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    render_error(console, error, verbosity, redactor=Redactor([SECRET]))
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def raised(error: BaseException) -> BaseException:
    """``error`` with a traceback, as the CLI catches it."""
    try:
        raise error
    except BaseException as caught:
        return caught


def test_expected_error_paragraph() -> None:
    error = InventoryError(
        "group 'prod' has no hosts",
        source=Source("inventory.yml", 12),
        hint="add hosts under prod.hosts, or fix the --limit pattern",
    )
    assert render(raised(error)) == (
        "error: inventory.yml:12: group 'prod' has no hosts\n"
        "  fix: add hosts under prod.hosts, or fix the --limit pattern\n"
    )


def test_expected_error_without_source_or_hint() -> None:
    assert render(TaskFailed("2 hosts failed")) == "error: 2 hosts failed\n"


def test_expected_error_traceback_only_at_vv() -> None:
    error = raised(TaskFailed("2 hosts failed"))
    assert render(error, 1) == "error: 2 hosts failed\n"
    text = render(error, 2)
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("provision.errors.TaskFailed: 2 hosts failed\nerror: 2 hosts failed\n")


def test_unexpected_error_names_itself_as_a_bug() -> None:
    assert render(raised(KeyError("hosts"))) == (
        "error: unexpected KeyError: 'hosts'\n  this is a bug in provision; run again with -vv to see the traceback\n"
    )


def test_unexpected_error_traceback_at_vv_is_redacted() -> None:
    def connect() -> None:
        raise RuntimeError(f"login failed with {SECRET}")

    try:
        try:
            connect()
        except RuntimeError as inner:
            raise ValueError(f"while using {SECRET}") from inner
    except ValueError as caught:
        error = caught
    text = render(error, 2)
    assert SECRET not in text
    assert "RuntimeError: login failed with ********\n" in text
    assert "in connect\n" in text
    assert text.endswith("error: unexpected ValueError: while using ********\n")


def test_secret_in_expected_error_is_redacted() -> None:
    error = InventoryError(f"bad value {SECRET}", source=Source(f"vars/{SECRET}.yml"), hint=f"not {SECRET}")
    text = render(error, 2)
    assert SECRET not in text
    assert text.endswith("error: vars/********.yml: bad value ********\n  fix: not ********\n")
