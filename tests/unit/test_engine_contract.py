"""The engine's contract with its modules: what `provision modules` shows, check mode owned by the engine."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from provision.apply import apply_plan
from provision.cli import main
from provision.contract import Arg, CommandResult, Module, Plan, PlanContext
from provision.tasks.facts import PathState
from provision.tasks.shell import FileState, quote
from tests.unit._modrun import FakeContext, local_context, run_task

pytestmark = pytest.mark.unit


def test_modules_name_shows_each_arguments_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modules", "command"]) == 0
    out = capsys.readouterr().out
    assert "creates" in out and "skip when this path exists" in out


def test_modules_name_falls_back_to_the_docstring_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modules", "file"]) == 0
    out = capsys.readouterr().out
    assert "what a link points to (state: link)" in out


# -- the import graph ----------------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "provision"
# The engine: everything of the package but the task modules, the CLI and its sub-commands, the lab.
NOT_ENGINE = ("provision.tasks", "provision.cli", "provision.commands", "provision.lab", "provision.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The provision modules ``path`` imports (``if TYPE_CHECKING:`` ones included: a circle is a circle)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = list(tree.body) if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes.extend(node.body)
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from pkg import submodule` imports the submodule; `from pkg import name`, the package.
            submodules = [f"{target}.{alias.name}" for alias in node.names if _exists(f"{target}.{alias.name}")]
            candidates = submodules if len(submodules) == len(node.names) else [target, *submodules]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c.startswith("provision") and _exists(c))
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent / Path(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, top_level_only=top_level_only) for p in PACKAGE.rglob("*.py")}


def test_module_level_imports_have_no_cycle() -> None:
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_engine_never_imports_the_task_modules() -> None:
    arrows = [(module, target) for module, targets in _graph(top_level_only=False).items()
              if not module.startswith(NOT_ENGINE) for target in targets if target.startswith("provision.tasks")]
    assert arrows == []


def test_no_engine_module_names_a_task_module() -> None:
    """What the engine does around a module is the module's attribute, never a test of its name."""
    engine = [p for p in PACKAGE.glob("*.py") if not _module_name(p).startswith(NOT_ENGINE)]
    offenders = [f"{p.name}: {line.strip()}" for p in engine for line in p.read_text().splitlines()
                 if "task.module ==" in line or "task.module in" in line]
    assert offenders == []


# -- a module is its arguments, its facts and its plan; the engine does the rest --------------------


class _Directory(Module):
    """The example of provision.contract's docstring, as a newcomer would write it."""

    name = "dir"
    args = {"path": Arg(str, required=True)}

    def facts(self, args: dict[str, Any]) -> PathState:
        return PathState(args["path"])

    def plan(self, args: dict[str, Any], facts: FileState, ctx: PlanContext) -> Plan:
        if facts.type == "directory":
            return Plan()
        return Plan(f"created {args['path']}", script=f"mkdir -- {quote(args['path'])}",
                    diff=lambda _ctx: f"+{args['path']}/\n")


def test_a_planned_module_gets_check_mode_and_diff_from_the_engine(tmp_path: Path) -> None:
    target = tmp_path / "d"
    check = run_task(_Directory, {"path": str(target)}, local_context(check=True, diff=True))
    assert (check.status, check.msg, check.diff) == ("changed", f"would have created {target}", f"+{target}/\n")
    assert not target.exists()
    done = run_task(_Directory, {"path": str(target)}, local_context())
    assert (done.status, done.msg, done.diff) == ("changed", f"created {target}", None) and target.is_dir()
    assert run_task(_Directory, {"path": str(target)}, local_context(check=True)).status == "ok"


def test_apply_plan_pending_check_skips_and_steps() -> None:
    ctx = FakeContext(check=True)
    assert apply_plan(Plan(error="no source", pending="would link"), ctx).status == "changed"
    assert apply_plan(Plan(error="no source", pending="would link", check_skips=True), ctx).status == "skipped"
    assert apply_plan(Plan("ran x", script="x", check_skips=True), ctx).msg == "would ran x"
    assert ctx.calls == []
    real = FakeContext(results=[CommandResult(0, "one\n", ""), CommandResult(1, "", "boom\n")])
    second = Plan("step two", script="two", what="the second step")
    result = apply_plan(Plan("step one", script="one", then=lambda first, _ctx: second), real)
    assert [script for script, _, _ in real.calls] == ["one", "two"]
    assert result.status == "failed" and result.msg == "the second step failed (exit 1)\nboom"
    assert apply_plan(Plan(error="nope"), FakeContext()).status == "failed"
