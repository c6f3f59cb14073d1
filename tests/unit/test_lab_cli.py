"""The ``lab`` sub-command's parser (nothing is started here)."""

from __future__ import annotations

import argparse

import pytest

from provision.lab.cli import add_lab_parser

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="provision")
    add_lab_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_up_arguments() -> None:
    args = parse("lab", "up", "3", "--password-host", "fresh1", "--state-dir", "/tmp/l", "--subnet", "10.9.9.0/24")
    assert (args.lab_command, args.count, args.password_host, args.base) == ("up", 3, ["fresh1"], "fresh")
    assert (args.state_dir, args.subnet) == ("/tmp/l", "10.9.9.0/24")
    assert parse("lab", "up").count == 1


def test_down_and_ssh_arguments() -> None:
    assert parse("lab", "down", "--purge").purge is True
    args = parse("lab", "ssh", "lab2", "--", "uname", "-a")
    assert args.host == "lab2"
    assert [a for a in args.remote if a != "--"] == ["uname", "-a"]


def test_help_describes_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("lab", "--help")
    out = capsys.readouterr().out
    assert "up" in out and "down" in out and "inventory.yml" in out


def test_base_recipes_named_in_the_cli_match_the_lab() -> None:
    from provision.lab.base import RECIPES
    from provision.lab.cli import BASE_RECIPES

    assert sorted(RECIPES) == sorted(BASE_RECIPES)
