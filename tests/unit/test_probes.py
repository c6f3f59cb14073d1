"""Probe batches on this machine's /bin/sh: a batch answers exactly what each probe answers alone.

Inside a batch, ``pv_stat`` defers its ``stat`` and checksum to one ``pv_flush``; these tests hold
the deferred answers to the immediate ones, for awkward names too, and check the fallbacks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.facts import FACTS_SCRIPT, parse_facts
from provision.probes import batch_script, facts_and_probes_script, new_nonce, split_answers, split_facts_and_probes
from provision.tasks.shell import SHELL_LIB, parse_stat, quote

pytestmark = pytest.mark.unit


def sh(script: str) -> str:
    return subprocess.run(["sh", "-s"], input=SHELL_LIB + script, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def batched(scripts: list[str]) -> list[str | None]:
    nonce = new_nonce()
    return split_answers(sh(batch_script(scripts, nonce)), len(scripts), nonce)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "plain.conf").write_text("hello\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "with space 'quote' \\back").write_text("x")
    (tmp_path / "tab\there").write_text("tab")
    (tmp_path / "new\nline").write_text("newline")
    (tmp_path / "-dash").write_text("dash")
    (tmp_path / "link").symlink_to("dir/plain.conf")
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    os.chmod(tmp_path / "empty", 0o600)
    return tmp_path


def test_batched_answers_equal_answers_alone(tree: Path) -> None:
    names = ["dir", "dir/plain.conf", "empty", "with space 'quote' \\back", "tab\there", "new\nline",
             "-dash", "link", "dangling", "fifo", "absent"]
    scripts = [f"pv_stat {quote(str(tree / name))} sum" for name in names]
    scripts.append(f"pv_stat {quote(str(tree / 'dir'))}\ncd / && pv_stat {quote(str(tree / 'empty'))} sum")
    alone = [sh(script) for script in scripts]
    together = batched(scripts)
    assert together == alone
    states = [parse_stat(answer) for answer in together[:-1] if answer is not None]
    assert [s.type for s in states] == ["directory", "file", "file", "file", "file", "file", "file", "link",
                                        "link", "other", "absent"]
    assert states[1].sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert states[2].mode == "600" and states[2].size == 0
    assert states[7].link_target == "dir/plain.conf"


def test_many_probes_share_two_processes(tree: Path) -> None:
    """The flush runs one stat and one sha256sum for every deferred path."""
    scripts = [f"pv_stat {quote(str(tree / 'dir' / 'plain.conf'))} sum" for _ in range(50)]
    nonce = new_nonce()
    output = sh(batch_script(scripts, nonce))
    assert output.count(f"@@pv-{nonce} stat 50 50") == 1
    answers = split_answers(output, len(scripts), nonce)
    assert len(set(answers)) == 1 and parse_stat(answers[0]).size == 6


def test_pv_stat_in_a_subshell_answers_at_once(tree: Path) -> None:
    """In a command substitution or a pipeline pv_stat cannot defer; the batch keeps it immediate."""
    plain, empty, dash = (quote(str(tree / name)) for name in ("dir/plain.conf", "empty", "-dash"))
    scripts = [
        f"pv_stat {empty} sum",
        f'line=$(pv_stat {dash} sum); echo "got $line"',
        f"pv_stat {quote(str(tree / 'dir'))} | cat",
        f"pv_stat {plain} sum",
    ]
    alone = [sh(script) for script in scripts]
    assert batched(scripts) == alone
    assert "@@pv" not in "".join(alone)


def test_a_path_gone_before_the_flush_is_checked_again_alone(tree: Path) -> None:
    """If the flush's stat misses a path, every deferred answer is dropped rather than misread."""
    victim = quote(str(tree / "empty"))
    scripts = [f"pv_stat {victim} sum", f"pv_stat {quote(str(tree / 'dir'))}", f"rm -f {victim}; echo plain"]
    answers = batched(scripts)
    assert answers == [None, None, "plain\n"]


def test_past_the_limit_pv_stat_answers_at_once(tree: Path) -> None:
    path = quote(str(tree / "dir" / "plain.conf"))
    script = "\n".join([f"pv_stat {path} sum"] * 2005)
    (answer,) = batched([script])
    assert answer is not None
    lines = answer.splitlines()
    assert len(lines) == 2005 and len(set(lines)) == 1


def test_split_answers_fills_placeholders_and_keeps_missing_sections_none() -> None:
    nonce = "abc123"
    output = (f"\n@@pv-{nonce} 0\nfile\t@@pv-{nonce}#1\t@@pv-{nonce}$1\t-\n"
              f"\n@@pv-{nonce} 2\nplain\n"
              f"\n@@pv-{nonce} stat 1 1\n644\troot\troot\t6\n"
              f"\n@@pv-{nonce} sum\n\\{'a' * 64}  /odd\\\\name\n")
    assert split_answers(output, 3, nonce) == [f"file\t644\troot\troot\t6\t{'a' * 64}\t-\n", None, "plain\n"]


def test_split_answers_drops_an_answer_whose_placeholder_has_no_value() -> None:
    nonce = "abc123"
    output = (f"\n@@pv-{nonce} 0\ndirectory\t@@pv-{nonce}#1\t-\t-\n"
              f"\n@@pv-{nonce} 1\ndirectory\t@@pv-{nonce}#2\t-\t-\n"
              f"\n@@pv-{nonce} stat 1 0\n755\troot\troot\t4096\n\n@@pv-{nonce} sum\n")
    assert split_answers(output, 2, nonce) == ["directory\t755\troot\troot\t4096\t-\t-\n", None]


def test_facts_with_probes_answer_as_each_alone(tree: Path) -> None:
    scripts = [f"pv_stat {quote(str(tree / name))} sum" for name in ("dir/plain.conf", "absent")]
    nonce = new_nonce()
    run = subprocess.run(["sh", "-s"], input=facts_and_probes_script(FACTS_SCRIPT, scripts, nonce),
                         capture_output=True, text=True, timeout=60)
    facts, answers = split_facts_and_probes(run.stdout, len(scripts), nonce)
    assert parse_facts(facts) == parse_facts(sh(FACTS_SCRIPT))
    assert answers == [sh(script) for script in scripts]


def test_facts_exit_code_is_the_scripts_and_a_cut_batch_answers_nothing() -> None:
    nonce = new_nonce()
    run = subprocess.run(["sh", "-s"], input=facts_and_probes_script("echo os_id=x; exit 3", ["echo a"], nonce),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 3
    facts, answers = split_facts_and_probes(run.stdout, 1, nonce)
    assert facts.strip() == "os_id=x" and answers == ["a\n"]
    assert split_facts_and_probes("os_id=x\n", 1, nonce) == ("os_id=x\n", [None])
