"""Variable layers (precedence, explain, copies), extra vars, vars files."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from provision.errors import OptionsError
from provision.secrets import REDACTED, Secret
from provision.variables import (
    EXTRA_VARS,
    GROUP_VARS,
    INVENTORY_ALL,
    INVENTORY_HOST,
    LEVELS,
    PLAY_VARS,
    RUNTIME,
    SHORT_VALUE_WIDTH,
    Explained,
    VariableLayers,
    explain_rows,
    find_vars_files,
    parse_extra_vars,
    plain_value,
    short_json,
)
from provision.yamlfile import parse_yaml

pytestmark = pytest.mark.unit


def test_levels_in_documented_order() -> None:
    assert LEVELS == (
        "play defaults",
        "inventory: all",
        "inventory: groups",
        "group_vars/all",
        "group_vars/*",
        "inventory: host",
        "host_vars/*",
        "play vars",
        "vars_files",
        "facts",
        "block/task vars",
        "runtime",
        "extra vars",
        "magic",
    )


def test_higher_level_replaces_whole_value() -> None:
    layers = VariableLayers()
    layers.push(INVENTORY_ALL, "inv.yml", {"nginx": {"workers": 2, "gzip": True}, "a": 1})
    layers.push(GROUP_VARS, "group_vars/web.yml", {"nginx": {"workers": 4}})
    assert layers.merged() == {"nginx": {"workers": 4}, "a": 1}


def test_out_of_order_pushes_still_respect_levels() -> None:
    layers = VariableLayers()
    layers.push(EXTRA_VARS, "-e", {"x": "extra"})
    layers.push(RUNTIME, "set_fact", {"x": "runtime", "y": "runtime"})
    layers.push(PLAY_VARS, "site.yml:3", {"y": "play", "z": "play"})
    assert layers.merged() == {"x": "extra", "y": "runtime", "z": "play"}
    assert [layer.level for layer in layers.layers] == [PLAY_VARS, RUNTIME, EXTRA_VARS]


def test_same_level_later_push_wins() -> None:
    layers = VariableLayers()
    layers.push(RUNTIME, "task 1", {"r": 1})
    layers.push(RUNTIME, "task 2", {"r": 2})
    assert layers.get("r") == 2
    assert "r" in layers and "s" not in layers


def test_merged_is_a_fresh_dict() -> None:
    layers = VariableLayers()
    layers.push(INVENTORY_HOST, "inv.yml", {"a": 1})
    layers.merged()["a"] = 99
    assert layers.merged() == {"a": 1}


def test_copy_is_independent() -> None:
    base = VariableLayers()
    base.push(INVENTORY_HOST, "inv.yml", {"a": 1})
    twin = base.copy()
    twin.push(PLAY_VARS, "site.yml", {"a": 2, "b": 3})
    assert base.merged() == {"a": 1}
    assert twin.merged() == {"a": 2, "b": 3}
    assert len(base.layers) == 1


def test_drop_forgets_a_level() -> None:
    layers = VariableLayers()
    layers.push(INVENTORY_HOST, "inv.yml", {"a": 1})
    layers.push(PLAY_VARS, "play 1", {"a": 2, "p": 1})
    layers.drop(PLAY_VARS)
    layers.drop(RUNTIME)  # nothing there: no-op
    assert layers.merged() == {"a": 1}


def test_unknown_level_and_empty_push() -> None:
    layers = VariableLayers()
    with pytest.raises(ValueError, match="unknown variable level 'role defaults'"):
        layers.push("role defaults", "x", {"a": 1})
    with pytest.raises(ValueError, match="unknown variable level"):
        layers.drop("nope")
    layers.push(PLAY_VARS, "empty", {})
    assert layers.layers == ()


def test_explain_lists_winner_and_losers_closest_first() -> None:
    layers = VariableLayers()
    layers.push(INVENTORY_ALL, "inv.yml", {"a": 1, "b": 1}, scope="group all")
    layers.push(GROUP_VARS, "group_vars/web.yml", {"a": 2})
    layers.push(EXTRA_VARS, "-e", {"a": 3})
    assert layers.explain() == [
        Explained("a", 3, EXTRA_VARS, "-e", [(GROUP_VARS, "group_vars/web.yml", 2),
                                             (INVENTORY_ALL, "inv.yml (group all)", 1)]),
        Explained("b", 1, INVENTORY_ALL, "inv.yml (group all)", []),
    ]
    assert [e.name for e in layers.explain(levels=[GROUP_VARS])] == ["a"]


def test_explain_uses_key_lines_from_yaml() -> None:
    values = parse_yaml("a: 1\n\nb: 2\n", "group_vars/web.yml")
    layers = VariableLayers()
    layers.push(GROUP_VARS, "group_vars/web.yml", values, scope="web")
    assert [(e.name, e.source) for e in layers.explain()] == [
        ("a", "group_vars/web.yml:1 (web)"),
        ("b", "group_vars/web.yml:3 (web)"),
    ]


def test_explain_rows_short_json_and_secrets() -> None:
    layers = VariableLayers()
    layers.push(INVENTORY_HOST, "inv.yml", {
        "db_root_password": "hunter22",
        "long": "x" * 100,
        "tagged": Secret("s3cret"),
        "nested": {"api_token": "t0ken", "port": 1},
    })
    rows = {row[0]: row for row in explain_rows(layers.explain())}
    assert rows["db_root_password"][1] == f'"{REDACTED}"'
    assert rows["tagged"][1] == f'"{REDACTED}"'
    assert rows["nested"][1] == f'{{"api_token": "{REDACTED}", "port": 1}}'
    assert len(rows["long"][1]) == SHORT_VALUE_WIDTH and rows["long"][1].endswith("…")
    shown = {row[0]: row for row in explain_rows(layers.explain(), show_secrets=True)}
    assert shown["tagged"][1] == '"s3cret"'


def test_plain_value_makes_json_ready_values() -> None:
    assert plain_value({"d": datetime.date(2024, 1, 2), "t": (1, 2), "s": {1}}) == {
        "d": "2024-01-02", "t": [1, 2], "s": "{1}",
    }
    assert short_json(True) == "true"


def test_extra_vars_key_value_are_strings() -> None:
    assert parse_extra_vars(["n=3", "name='a b' empty=", "url=http://x/?a=b"]) == {
        "n": "3", "name": "a b", "empty": "", "url": "http://x/?a=b",
    }


def test_extra_vars_json_yaml_and_files(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text("from_file: 1\nn: file\n")
    (tmp_path / "vars.json").write_text('{"j": [1, 2]}')
    assert parse_extra_vars([
        '{"n": 3, "flag": true}',
        "{yaml: {nested: 1}}",
        f"@{tmp_path / 'vars.yml'}",
        f"@{tmp_path / 'vars.json'}",
        "",
    ]) == {"n": "file", "flag": True, "yaml": {"nested": 1}, "from_file": 1, "j": [1, 2]}


@pytest.mark.parametrize(
    ("item", "message", "hint"),
    [
        ("novalue", "'novalue' is not name=value", "-e name=value"),
        ("a=1 b", "'b' is not name=value", None),
        ("bad-name=1", "'bad-name=1' is not name=value", None),
        ("a='unclosed", "No closing quotation", "balance the quotes"),
        ("[1, 2]", "is not a mapping", None),
        ("{a: [", "YAML syntax error", None),
        ("@", "-e @ needs a file name", None),
        ("@/nonexistent/vars.yml", "file not found", None),
    ],
)
def test_extra_vars_errors(item: str, message: str, hint: str | None) -> None:
    with pytest.raises(OptionsError) as caught:
        parse_extra_vars([item])
    assert message in str(caught.value)
    if hint:
        assert caught.value.hint is not None and hint in caught.value.hint


def test_extra_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(OptionsError, match="a vars file must hold a mapping"):
        parse_extra_vars([f"@{tmp_path / 'list.yml'}"])


def test_find_vars_files_order(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("a: 1\n")
    assert find_vars_files(tmp_path, "web") == [tmp_path / "web.yml"]
    (tmp_path / "web.json").write_text("{}")
    assert find_vars_files(tmp_path, "web") == [tmp_path / "web.yml"]  # .yml is tried first
    (tmp_path / "web").mkdir()
    for name in ("b.yml", "a.json", "c", ".hidden.yml", "d.yml~", "notes.txt"):
        (tmp_path / "web" / name).write_text("{}")
    (tmp_path / "web" / "b2").mkdir()
    (tmp_path / "web" / "b2" / "x.yaml").write_text("{}")
    assert find_vars_files(tmp_path, "web") == [
        tmp_path / "web" / "a.json",
        tmp_path / "web" / "b.yml",
        tmp_path / "web" / "b2" / "x.yaml",
        tmp_path / "web" / "c",
    ]
    assert find_vars_files(tmp_path, "db") == []
