"""The one Jinja2 environment: strict undefined with file:line, lazy variables, native values."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import Source, TemplateError
from provision.templating import Templar

pytestmark = pytest.mark.unit


def test_variables_render_lazily_and_recursively() -> None:
    templar = Templar()
    variables = {"name": "web", "base": "/srv/{{ name }}", "paths": ["{{ base }}/a"], "broken": "{{ nope }}"}
    assert templar.render_string("{{ base }}/x", variables) == "/srv/web/x"
    assert templar.render_value({"p": "{{ paths }}"}, variables) == {"p": ["/srv/web/a"]}


def test_single_expression_keeps_its_native_type() -> None:
    templar = Templar()
    assert templar.render_string("{{ range(1, 4) | list }}", {}) == [1, 2, 3]
    assert templar.render_string("{{ n + 1 }}", {"n": 2}) == 3
    assert templar.render_string("n={{ n }}", {"n": 2}) == "n=2"


def test_undefined_variable_names_variable_and_source() -> None:
    with pytest.raises(TemplateError) as info:
        Templar().render_string("x {{ missing }}", {}, source=Source("site.yml", 7), what="task 't'")
    assert str(info.value).startswith("site.yml:7: task 't': undefined variable 'missing'")


def test_undefined_in_template_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "app.conf.j2").write_text("a = 1\nb = {{ b }}\nc = {{ c }}\n")
    templar = Templar([tmp_path])
    with pytest.raises(TemplateError) as info:
        templar.render_file("app.conf.j2", {"b": 2})
    assert info.value.source is not None and info.value.source.line == 3
    assert str(info.value.source.file).endswith("app.conf.j2") and "'c'" in info.value.message


def test_missing_template_lists_search_path(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        Templar([tmp_path]).render_file("nope.j2", {})
    assert str(tmp_path) in info.value.message


def test_search_path_order_project_first(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "builtin").mkdir()
    (tmp_path / "project" / "t.j2").write_text("project\n")
    (tmp_path / "builtin" / "t.j2").write_text("builtin\n")
    (tmp_path / "builtin" / "only.j2").write_text("builtin only\n")
    templar = Templar([tmp_path / "project", tmp_path / "builtin"])
    assert templar.render_file("t.j2", {})[0] == "project\n"
    assert templar.render_file("only.j2", {})[0] == "builtin only\n"


def test_expressions_for_when_and_filters() -> None:
    templar = Templar()
    result = {"changed": True, "rc": 0}
    assert templar.evaluate("r is changed and r.rc == 0", {"r": result}) is True
    assert templar.evaluate("x | default('d') == 'd'", {}) is True
    assert templar.evaluate("{'a': 1} | combine({'b': 2}) | to_json", {}) == '{"a": 1, "b": 2}'
    with pytest.raises(TemplateError):
        templar.evaluate("undefined_thing == 1", {})


def test_self_referencing_variable_is_an_error_not_a_hang() -> None:
    with pytest.raises(TemplateError):
        Templar().render_string("{{ a }}", {"a": "{{ a }}"})
