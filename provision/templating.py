"""One Jinja2 environment for templates, task arguments and ``when`` expressions.

``StrictUndefined`` everywhere: an undefined variable is an error naming the template (or the
playbook) file and line and the variable, never an empty string. Variables are rendered lazily
when read, as Ansible does, so ``base: "/srv/{{ name }}"`` works wherever ``base`` is used, and a
variable nobody reads may stay unrenderable.

Template search path: the user's project ``templates/`` first, then the built-in ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import re
import shlex
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from .errors import Source, TemplateError
from .frappe_ports import nginx_site_ports
from .secrets import Secret, mark_secret, note_derived, taint_filters
from .server_roles import FILTERS as ROLE_FILTERS

_MARKERS = ("{{", "{%")
_MAX_DEPTH = 20


def is_template(value: object) -> bool:
    """True if a string holds Jinja2 syntax that needs rendering."""
    return isinstance(value, str) and any(m in value for m in _MARKERS)


class LazyVars(Mapping[str, Any]):
    """A read-only view of variables that renders templated values on first read."""

    def __init__(self, raw: Mapping[str, Any], templar: Templar) -> None:
        self._raw = raw
        self._templar = templar
        self._cache: dict[str, Any] = {}
        self._resolving: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key not in self._raw:
            if key in self._templar.env.globals:
                return self._templar.env.globals[key]
            raise KeyError(key)
        value = mark_secret(key, self._raw[key])  # what is made from a credential stays secret
        if _contains_template(value):
            if key in self._resolving:
                raise TemplateError(f"variable {key!r} refers to itself")
            self._resolving.add(key)
            try:
                value = self._templar.render_value(value, self, what=f"variable {key!r}")
            finally:
                self._resolving.discard(key)
        self._cache[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._raw or key in self._templar.env.globals

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def resolved(self) -> dict[str, Any]:
        """Every variable that renders, rendered (for debug views); unrenderable ones stay raw."""
        out: dict[str, Any] = {}
        for key in self._raw:
            try:
                out[key] = self[key]
            except TemplateError:
                out[key] = self._raw[key]
        return out


def _contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_contains_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_template(v) for v in value)
    return False


class Templar:
    """Renders strings, nested values, expressions and template files."""

    def __init__(self, search_path: Sequence[Path] = ()) -> None:
        self.search_path = [p for p in search_path]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search_path]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
            finalize=_note_secret,
        )
        self.env.filters.update(FILTERS)
        taint_filters(self.env.filters)
        self.env.tests.update(TESTS)
        self.env.globals["lookup"] = _lookup
        self.env.globals["range"] = _bounded_range
        self._strings: dict[str, jinja2.Template] = {}
        self._lock = threading.Lock()

    # -- compile caches --------------------------------------------------------------------------

    def _compile(self, text: str, source: Source | None) -> jinja2.Template:
        template = self._strings.get(text)
        if template is None:
            try:
                template = self.env.from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"template syntax error: {exc.message}", source=source,
                                    hint=f"in: {text.strip()[:120]}") from None
            with self._lock:
                self._strings[text] = template
        return template

    def variables(self, raw: Mapping[str, Any]) -> LazyVars:
        """Wrap raw variables for rendering."""
        return raw if isinstance(raw, LazyVars) else LazyVars(raw, self)

    # -- rendering ---------------------------------------------------------------------------------

    def render_string(self, text: str, variables: Mapping[str, Any], *, source: Source | None = None,
                      what: str = "value") -> Any:
        """Render one string; ``"{{ expr }}"`` alone returns the expression's native value."""
        if not is_template(text):
            return text
        lazy = self.variables(variables)
        single = _single_expression(text)
        if single is not None:
            return _note_secret(self.evaluate(single, lazy, source=source, what=what))
        template = self._compile(text, source)
        return self._run(template, lazy, source, what)

    def render_value(self, value: Any, variables: Mapping[str, Any], *, source: Source | None = None,
                     what: str = "value") -> Any:
        """Render every string inside a nested value (dicts, lists)."""
        if isinstance(value, str):
            rendered = self.render_string(value, variables, source=source, what=what)
            depth = 0
            # A value that renders to another template (a var holding "{{ x }}") is rendered again.
            while isinstance(rendered, str) and is_template(rendered) and rendered != value and depth < _MAX_DEPTH:
                value, rendered = rendered, self.render_string(rendered, variables, source=source, what=what)
                depth += 1
            return rendered
        if isinstance(value, Mapping):
            return {k: self.render_value(v, variables, source=source, what=what) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.render_value(v, variables, source=source, what=what) for v in value]
        return value

    def evaluate(self, expression: str, variables: Mapping[str, Any], *, source: Source | None = None,
                 what: str = "expression") -> Any:
        """Evaluate a bare Jinja2 expression (``when``, ``until``) to a native value."""
        expression = expression.strip()
        if expression.startswith("{{") and expression.endswith("}}"):
            expression = expression[2:-2].strip()
        template = self._compile("{% set pv_result = (" + expression + "\n) %}", source)
        lazy = self.variables(variables)
        try:
            module = template.make_module(lazy, shared=True)  # type: ignore[arg-type]
            result = module.__dict__["pv_result"]
            if isinstance(result, jinja2.Undefined):  # `when: flag` with flag undefined: an error, not a value
                result._fail_with_undefined_error()
            return result
        except TemplateError as exc:  # from a filter, lookup or nested variable: say where it was used
            exc.source = exc.source or source
            raise
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{what}: {_undefined_message(exc)}", source=source,
                                hint=f"in: {expression[:120]} — define the variable, or guard it with "
                                "`is defined` / `| default(...)`") from None
        except Exception as exc:
            raise TemplateError(f"{what}: cannot evaluate {expression[:120]!r}: {exc}", source=source) from None

    def load_file(self, name: str, *, source: Source | None = None) -> jinja2.Template:
        """A template file from the search path, compiled; a missing file or a syntax error is a TemplateError.

        ``source`` (the task naming the template) is where a missing template is reported; a
        syntax error is reported at the template's own file and line.
        """
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            # Raised for the template itself or a template it includes: exc names the file.
            raise TemplateError(f"template syntax error: {exc.message}",
                                source=Source(exc.filename or name, exc.lineno),
                                hint=f"fix the Jinja2 syntax of template {name!r} at that line") from None
        except jinja2.TemplateNotFound as exc:
            searched = ", ".join(str(p) for p in self.search_path) or "(empty search path)"
            missing = f"template {name!r}" if exc.name in (None, name) else f"template {exc.name!r} (used by {name!r})"
            raise TemplateError(f"{missing} not found (searched {searched})", source=source,
                                hint="put it in templates/ beside the playbook, or fix the name") from None

    def render_file(self, name: str, variables: Mapping[str, Any]) -> tuple[str, str]:
        """Render a template file from the search path; returns (text, path of the file used)."""
        template = self.load_file(name)
        filename = template.filename or name
        text = self._run(template, self.variables(variables), Source(filename), f"template {name!r}")
        return str(text), filename

    def _run(self, template: jinja2.Template, lazy: LazyVars, source: Source | None, what: str) -> str:
        try:
            context = template.new_context(lazy, shared=True)  # type: ignore[arg-type]
            return str(self.env.concat(template.root_render_func(context)))
        except TemplateError as exc:  # from a filter, lookup or nested variable: say where it was used
            exc.source = exc.source or source
            raise
        except jinja2.UndefinedError as exc:
            where = _line_from_traceback(exc, source, template)
            raise TemplateError(f"{what}: {_undefined_message(exc)}", source=where,
                                hint="define the variable (inventory, group_vars, play vars or -e), or use "
                                "`| default(...)`") from None
        except Exception as exc:
            raise TemplateError(f"{what}: {type(exc).__name__}: {exc}",
                                source=_line_from_traceback(exc, source, template)) from None


def _note_secret(value: Any) -> Any:
    """Every ``{{ }}`` output: a value made from a secret is redacted from then on, wherever it shows."""
    if isinstance(value, Secret):
        note_derived(value)
    return value


_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)


def _single_expression(text: str) -> str | None:
    match = _SINGLE.match(text)
    return match.group("expr").strip() if match and "{%" not in text else None


def _undefined_message(exc: jinja2.UndefinedError) -> str:
    message = str(exc.message or exc)
    match = re.match(r"'(.+)' is undefined", message)
    if match:
        return f"undefined variable {match.group(1)!r}"
    match = re.match(r"'(?:provision\.yamlfile\.Yaml)?(\w+?)(?: object)?' has no attribute '(.+)'", message)
    if match:  # not "'provision.yamlfile.YamlDict object' has no attribute 'x'"
        kind = {"Dict": "mapping", "dict": "mapping", "List": "list", "list": "list"}.get(match.group(1), "value")
        return f"undefined attribute {match.group(2)!r} (the {kind} has no such key)"
    return message


def _line_from_traceback(exc: BaseException, source: Source | None, template: jinja2.Template) -> Source | None:
    """The template line where rendering failed: the last frame of the compiled template, mapped back."""
    if source is None or not source.file or source.line or not template.filename:
        return source
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return Source(source.file, line) if line else source


# -- filters and tests (the Ansible ones people reach for) -----------------------------------------


def _to_nice_json(value: Any, indent: int = 1) -> str:
    return json.dumps(value, indent=indent, sort_keys=True)


def _to_yaml(value: Any) -> str:
    import yaml

    return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=False))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


def _regex_replace(value: str, pattern: str, replacement: str = "", ignorecase: bool = False) -> str:
    return re.sub(pattern, replacement, str(value), flags=re.I if ignorecase else 0)


def _regex_search(value: str, pattern: str, ignorecase: bool = False) -> str | None:
    match = re.search(pattern, str(value), flags=re.I if ignorecase else 0)
    return match.group(0) if match else None


def _combine(*dicts: Mapping[str, Any], recursive: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            if recursive and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = _combine(out[key], value, recursive=True)
            else:
                out[key] = value
    return out


def _hash(value: Any, algorithm: str = "sha1") -> str:
    return hashlib.new(algorithm, str(value).encode()).hexdigest()


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise TemplateError(msg or "a mandatory variable is undefined")
    return value


def _ternary(value: Any, true_value: Any, false_value: Any) -> Any:
    return true_value if value else false_value


MAX_RANGE = 1_000_000


def _bounded_range(*bounds: int) -> range:
    """``range`` for templates, at most ``MAX_RANGE`` numbers: ``range(10**9) | list`` would hang the run."""
    numbers = range(*bounds)
    if len(numbers) > MAX_RANGE:
        raise TemplateError(f"range{bounds} holds {len(numbers):,} numbers; at most {MAX_RANGE:,}")
    return numbers


def _lookup(kind: str, *terms: str, default: Any = None) -> Any:
    if kind == "env":
        values = [os.environ.get(t, default if default is not None else "") for t in terms]
    elif kind == "file":
        values = [Path(t).expanduser().read_text().rstrip("\n") for t in terms]
    else:
        raise TemplateError(f"lookup({kind!r}) is not supported; use 'env' or 'file'")
    return values[0] if len(values) == 1 else ",".join(values)


FILTERS: dict[str, Any] = {
    "to_json": lambda v, **kw: json.dumps(v, **kw),
    "to_nice_json": _to_nice_json,
    "from_json": json.loads,
    "to_yaml": _to_yaml,
    "bool": _bool,
    "regex_replace": _regex_replace,
    "regex_search": _regex_search,
    "basename": posixpath.basename,
    "dirname": posixpath.dirname,
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "quote": lambda v: shlex.quote(str(v)),
    "combine": _combine,
    "dict2items": lambda d: [{"key": k, "value": v} for k, v in d.items()],
    "items2dict": lambda items: {i["key"]: i["value"] for i in items},
    "hash": _hash,
    "mandatory": _mandatory,
    "ternary": _ternary,
    "nginx_site_ports": nginx_site_ports,
    **ROLE_FILTERS,
}

def _version_key(text: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(text))[:4])


_VERSION_OPS: dict[str, Any] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b, "lt": lambda a, b: a < b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
}


def _version(value: Any, other: Any, operator: str = ">=") -> bool:
    """Ansible's ``version`` test on dotted numbers: ``x is version('3.10', '>=')``."""
    if operator not in _VERSION_OPS:
        raise TemplateError(f"version test: unknown operator {operator!r}")
    left, right = _version_key(value), _version_key(other)
    width = max(len(left), len(right))
    return bool(_VERSION_OPS[operator](left + (0,) * (width - len(left)), right + (0,) * (width - len(right))))


TESTS: dict[str, Any] = {
    "version": _version,
    "changed": lambda r: isinstance(r, Mapping) and bool(r.get("changed")),
    "failed": lambda r: isinstance(r, Mapping) and bool(r.get("failed")),
    "succeeded": lambda r: isinstance(r, Mapping) and not r.get("failed"),
    "success": lambda r: isinstance(r, Mapping) and not r.get("failed"),
    "skipped": lambda r: isinstance(r, Mapping) and bool(r.get("skipped")),
    "match": lambda v, p: re.match(p, str(v)) is not None,
    "search": lambda v, p: re.search(p, str(v)) is not None,
}
