"""The bad-input corpus: every malformed input ends cleanly, with its exit code and file:line.

Each file under ``bad_inputs/<category>/`` is one case: the project files to write, the
command line, and what must come out (``code``, and ``where``/``says`` substrings). Every case
runs ``provision`` in a fresh directory as a subprocess, bounded by a timeout (a hang fails the
case instead of the session), and must print no traceback and never "a bug in provision".
Inputs too big to store (an alias bomb, 1,200 nested groups, a 1M-name range) are built by the
``generate`` key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(CORPUS.glob("*/*.yml"))
# A case runs in seconds; the bound only turns a hang into a failure.
CASE_TIMEOUT = 90

DEFAULT_FILES = {
    "inventory.yml": "all:\n  hosts:\n    local1:\n      connection: local\n",
    "site.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: hello\n      debug: {msg: hi}\n",
}


def _generate(kind: str, size: int) -> str:
    if kind == "nested_groups":  # a chain of groups, each nested in the YAML under the previous one
        lines, indent = ["all:", "  children:"], "    "
        for index in range(size):
            lines += [f"{indent}g{index}:", f"{indent}  children:"]
            indent += "    "
        return "\n".join([*lines, f"{indent}leaf:", f"{indent}  hosts:", f"{indent}    x1:"]) + "\n"
    if kind == "alias_bomb":  # billion laughs: size levels of 9 aliases each
        lines = ["all:", "  hosts:", "    local1: {connection: local}", "  vars:", '    l0: &l0 ["lol"]']
        for level in range(1, size + 1):
            refs = ", ".join([f"*l{level - 1}"] * 9)
            lines.append(f"    l{level}: &l{level} [{refs}]")
        return "\n".join(lines) + "\n"
    if kind == "deep_flow":
        return "all:\n  vars:\n    deep: " + "[" * size + "]" * size + "\n  hosts: {local1: }\n"
    raise ValueError(kind)


def _case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert isinstance(case, dict) and "code" in case and "why" in case, f"{path}: needs why and code"
    return case


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_bad_input_ends_cleanly(path: Path, tmp_path: Path) -> None:
    case = _case(path)
    files = dict(DEFAULT_FILES)
    files.update(case.get("files") or {})
    for name, text in (case.get("generate") or {}).items():
        kind, size = text.split(":")
        files[name] = _generate(kind, int(size))
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if text == "<absent>":  # a default file this case must not have
            continue
        if text is None:  # a directory
            target.mkdir(exist_ok=True)
        elif isinstance(text, dict) and "bytes" in text:
            target.write_bytes(bytes.fromhex(text["bytes"]))
        else:
            target.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISION_")}
    env["COLUMNS"] = "200"
    env.update({k: str(v).replace("{dir}", str(tmp_path)) for k, v in (case.get("env") or {}).items()})
    args = [str(a).replace("{dir}", str(tmp_path)) for a in case.get("args", ["playbook", "site.yml"])]
    result = subprocess.run([sys.executable, "-m", "provision", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=CASE_TIMEOUT, env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # no controlling terminal, as in CI
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "bug in provision" not in output, output
    assert result.returncode == case["code"], f"{case['why']}: exit {result.returncode}\n{output}"
    for key in ("where", "says"):
        if case.get(key):
            assert str(case[key]) in " ".join(output.split()), f"{case['why']}: no {case[key]!r} in\n{output}"


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 80
