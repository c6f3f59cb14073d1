"""Change batching: the script framing on this machine's /bin/sh, and which tasks may travel together.

The framing tests run batch scripts through the real bootstrap (``LocalConnection``): parts stay
apart (stdout, stderr, exit code, stdin), a failure or a changed answer stops the script there.
The dependency tests run playbooks on local hosts with batching on and off and compare results,
end state and channels (``LocalConnection.sessions``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.batching import _mentions, _task_stops
from provision.changebatch import BatchPart, batch_change_script, split_batch_output
from provision.connection import LocalConnection
from provision.playbook import Task
from provision.probes import SHELL_LIB, new_nonce
from provision.tasks.shell import quote

from .test_runner_local import run

pytestmark = pytest.mark.unit


def run_batch(parts: list[BatchPart], probes: list[str] | None = None):  # type: ignore[no-untyped-def]
    nonce = new_nonce()
    script, stdin = batch_change_script(parts, probes or [], nonce)
    result = LocalConnection().run(script, stdin=stdin or None)
    return split_batch_output(result, len(parts), len(probes or []), nonce), script


def probe_now(probe: str) -> str:
    return subprocess.run(["sh", "-s"], input=SHELL_LIB + probe, capture_output=True, text=True, check=True,
                          timeout=30).stdout


def test_each_part_keeps_its_own_output_exit_code_and_duration(tmp_path: Path) -> None:
    outcome, _ = run_batch([BatchPart("echo one; echo err-one >&2"), BatchPart("printf two"),
                            BatchPart("echo three")])
    assert [(r.index, r.result.rc, r.result.stdout, r.result.stderr) for r in outcome.runs] == [
        (0, 0, "one\n", "err-one\n"), (1, 0, "two", ""), (2, 0, "three\n", "")]
    # Each part has a duration of its own, from the host's clock (None where it has no /proc/uptime).
    assert all(r.complete and (r.duration is None or isinstance(r.duration, float)) for r in outcome.runs)
    assert outcome.stale is None


def test_a_failing_part_stops_the_script_there(tmp_path: Path) -> None:
    later = tmp_path / "later"
    outcome, _ = run_batch([BatchPart("true"), BatchPart("echo failing >&2; exit 3"),
                            BatchPart(f"touch {quote(str(later))}")])
    assert [(r.index, r.result.rc) for r in outcome.runs] == [(0, 0), (1, 3)]
    assert outcome.runs[1].result.stderr == "failing\n"
    assert not later.exists(), "a part after the failure ran"


def test_exit_cd_and_set_e_stay_inside_their_part(tmp_path: Path) -> None:
    outcome, _ = run_batch([BatchPart("set -e; cd /; exit 0"), BatchPart("pwd"), BatchPart("false; echo went-on")])
    assert [r.result.rc for r in outcome.runs] == [0, 0, 0]
    assert outcome.runs[1].result.stdout.strip() == os.getcwd()
    assert outcome.runs[2].result.stdout == "went-on\n"


def test_stdin_reaches_only_its_own_part_and_never_the_script(tmp_path: Path) -> None:
    outcome, script = run_batch([BatchPart("true", stdin=b"unread-secret-A"),
                                 BatchPart("cat", stdin=b"secret-B\n"), BatchPart("cat")])
    assert [r.result.stdout for r in outcome.runs] == ["", "secret-B\n", ""]
    assert "secret" not in script


def test_a_changed_answer_stops_before_its_part_and_brings_the_fresh_answer(tmp_path: Path) -> None:
    target = tmp_path / "f"
    probe = f"pv_stat {quote(str(target))}"
    before = probe_now(probe)
    marker = tmp_path / "second-ran"
    outcome, _ = run_batch([BatchPart(f"echo x > {quote(str(target))}"),
                            BatchPart(f"touch {quote(str(marker))}", probe=probe, expected=before)],
                           probes=[probe])
    assert [r.index for r in outcome.runs] == [0]
    assert not marker.exists()
    assert outcome.stale is not None and outcome.stale == (1, probe_now(probe))
    assert outcome.answers == [probe_now(probe)], "the follow-up probes see the state after the parts"


def test_an_unchanged_answer_lets_its_part_run(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("k\n")
    probe = f"pv_stat {quote(str(tmp_path / 'keep'))} sum"
    outcome, _ = run_batch([BatchPart("true"), BatchPart("echo ran", probe=probe, expected=probe_now(probe)),
                            BatchPart("", probe=probe, expected=probe_now(probe))])
    assert [r.result.stdout for r in outcome.runs] == ["", "ran\n", ""]
    assert outcome.stale is None


def test_a_cut_batch_reports_the_part_that_was_running_as_incomplete() -> None:
    nonce = "abc"
    from provision.contract import CommandResult

    stdout = f"\n@@pvb-{nonce} s 0 1.00\nfirst\n@@pvb-{nonce} e 0 0 1.50\n\n@@pvb-{nonce} s 1 1.50\npartial"
    stderr = f"\n@@pvb-{nonce} s 0\n\n@@pvb-{nonce} s 1\n[provision: interrupted]"
    outcome = split_batch_output(CommandResult(-1, stdout, stderr), 3, 2, nonce)
    assert [(r.index, r.result.rc, r.complete) for r in outcome.runs] == [(0, 0, True), (1, -1, False)]
    assert outcome.runs[0].duration == pytest.approx(0.5)
    assert "[provision: interrupted]" in outcome.runs[1].result.stderr
    assert outcome.answers is None


# -- which tasks may travel together --------------------------------------------------------------


def task(**fields: Any) -> Task:
    from provision.errors import Source

    return Task(name=fields.pop("name", "t"), source=Source("site.yml", 1), **fields)


def test_task_keywords_that_keep_a_task_out_of_any_batch() -> None:
    assert not _task_stops(task(module="file", args={"path": "/x"}))
    for keywords in ({"delegate_to": "localhost"}, {"until": ["x"]}, {"retries": 3}, {"loop_pause": 1},
                     {"timeout": 5}, {"check_mode": True}):
        assert _task_stops(task(module="file", args={"path": "/x"}, **keywords)), keywords
    for module in ("set_fact", "meta"):
        assert _task_stops(task(module=module, args={})), module


def test_a_registered_name_is_found_wherever_a_later_task_may_read_it() -> None:
    assert _mentions(task(module="copy", args={"content": "{{ out.stdout }}"}), None, "out")
    assert _mentions(task(module="file", args={}, when=["out.rc == 0"]), None, "out")
    assert _mentions(task(module="file", args={}, changed_when=["out.changed"]), None, "out")
    assert _mentions(task(module="file", args={}, loop="{{ out.results }}"), None, "out")
    assert not _mentions(task(module="file", args={"path": "/srv/x"}), None, "out")


BOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: dirs
      file: {{path: "{{{{ work }}}}/d{{{{ item }}}}", state: directory}}
      loop: [1, 2, 3]
    - name: lines
      lineinfile:
        path: "{{{{ work }}}}/d1/ini"
        line: "k{{{{ item }}}}=1"
        regexp: "^k{{{{ item }}}}="
        create: true
      loop: [1, 2, 3, 4]
{middle}
    - name: after
      copy: {{dest: "{{{{ work }}}}/d2/after", content: "after\\n"}}
  handlers:
    - name: h
      shell: "echo handled >> {{{{ work }}}}/handled"
"""


def both(tmp_path: Path, middle: str = "") -> tuple[Any, Any]:
    outcomes = []
    for batched in (True, False):
        work = tmp_path / ("on" if batched else "off")
        work.mkdir()
        code, rec, runner = run(work, BOOK.format(middle=middle), batch_changes=batched)
        tree = sorted((str(p.relative_to(work)), p.read_text() if p.is_file() else "")
                      for p in work.rglob("*") if p.name not in ("site.yml", "inventory.yml"))
        results = [(e.task, e.status, e.item, e.msg.replace(str(work), "W")) for e in rec.done]
        outcomes.append((code, results, tree, runner.hosts["h1"].sessions))
    on, off = outcomes
    assert on[:3] == off[:3]
    return on, off


def test_independent_changes_take_fewer_channels(tmp_path: Path) -> None:
    on, off = both(tmp_path)
    assert on[0] == 0
    assert on[3] < off[3], (on[3], off[3])


def test_a_register_read_later_breaks_the_batch_and_results_stay_equal(tmp_path: Path) -> None:
    on, _ = both(tmp_path, """\
    - name: say
      shell: echo said
      register: said
    - name: heard
      copy: {dest: "{{ work }}/heard", content: "{{ said.stdout }}"}
      when: said.stdout == 'said'""")
    assert ("heard", "changed") in [(t, s) for t, s, _, _ in on[1]]


def test_a_failure_in_a_batch_stops_the_host_and_equals_unbatched(tmp_path: Path) -> None:
    on, _ = both(tmp_path, """\
    - name: boom
      shell: exit 4""")
    assert on[0] == 2
    assert ("after", "changed") not in [(t, s) for t, s, _, _ in on[1]]


def test_handlers_run_after_batched_changes_as_without(tmp_path: Path) -> None:
    on, _ = both(tmp_path, """\
    - name: notify
      copy: {dest: "{{ work }}/conf", content: "c"}
      notify: h""")
    assert ("handled", "handled\n") in on[2]


def test_an_answer_of_absent_is_checked_without_a_process_and_a_path_that_appeared_stops(tmp_path: Path) -> None:
    target = tmp_path / "made"
    probe = f"pv_stat {quote(str(target))} sum"
    ran = tmp_path / "ran"
    parts = [BatchPart("true"),
             BatchPart(f"touch {quote(str(ran))}", probe=probe, expected="absent\n", absent=str(target))]
    outcome, script = run_batch(parts)
    assert [r.index for r in outcome.runs] == [0, 1] and outcome.stale is None and ran.exists()
    # Still absent: the probe (a command substitution, a process) runs only if the path exists now.
    assert f"if [ $_pvb_go = 1 ] && {{ [ -e '{target}' ] || [ -L '{target}' ]; }}; then\n_pvb_got=$(" in script
    ran.unlink()
    parts[0] = BatchPart(f"echo here > {quote(str(target))}")
    outcome, _ = run_batch(parts)
    assert [r.index for r in outcome.runs] == [0] and not ran.exists()
    assert outcome.stale == (1, probe_now(probe))


def test_a_file_write_reads_its_bytes_straight_from_the_channel(tmp_path: Path) -> None:
    from provision.tasks.shell import reads_exactly_first, write_file_script, write_input

    first, second = tmp_path / "a", tmp_path / "b"
    a = write_file_script(str(first), mode="640", size=4)
    b = write_file_script(str(second), size=3)
    four, three = len(write_input(b"AAAA")), len(write_input(b"BBB"))
    assert reads_exactly_first(a, four) and reads_exactly_first(b, three) and not reads_exactly_first(a, four + 1)
    assert not reads_exactly_first(write_file_script(str(first), validate="test -s %s", size=4), four)
    assert not reads_exactly_first(a + "cat > /dev/null\n", four)
    outcome, script = run_batch([BatchPart(a, stdin=write_input(b"AAAA"), direct=True),
                                 BatchPart("cat", stdin=b"mid\n"),
                                 BatchPart(b, stdin=write_input(b"BBB"), direct=True), BatchPart("cat")])
    assert [r.result.rc for r in outcome.runs] == [0, 0, 0, 0]
    assert first.read_bytes() == b"AAAA" and second.read_bytes() == b"BBB"
    assert [r.result.stdout for r in outcome.runs] == ["", "mid\n", "", ""]
    # No pipe, drain or second head around the writes: their own head -c reads the channel.
    assert script.count("| { (") == 1  # only the cat part, which may leave bytes unread


def test_new_files_of_a_batch_are_synced_once_per_directory_after_the_parts(tmp_path: Path) -> None:
    from provision.tasks.shell import write_file_script, write_input

    (tmp_path / "old").write_text("old\n")
    writes = [(tmp_path / "new1", b"one\n"), (tmp_path / "new2", b"two\n"), (tmp_path / "old", b"new\n")]
    parts = [BatchPart(write_file_script(str(path), size=len(data)), stdin=write_input(data), written=str(path),
                       direct=True)
             for path, data in writes]
    outcome, script = run_batch([BatchPart("true"), *parts])
    assert [r.result.rc for r in outcome.runs] == [0, 0, 0, 0]
    assert [path.read_bytes() for path, _ in writes] == [data for _, data in writes]
    # One syncfs for the directory, after the parts; a replaced file is still synced before its mv.
    assert script.count(f"set -- \"$@\" '{tmp_path}'") == 1
    assert script.index('sync -f -- "$@"') > script.index("_pvb_later=1")


def test_only_a_file_older_than_the_batch_is_synced_before_its_rename(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A replaced file fsyncs before its mv; a new file, or one an earlier part created, waits for the syncfs."""
    from provision.tasks.shell import write_file_script, write_input

    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "sync.log"
    (shim / "sync").write_text(f'#!/bin/sh\necho "$*" >> {quote(str(log))}\n')
    (shim / "sync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    work = tmp_path / "w"
    work.mkdir()
    old, new = work / "old", work / "new"
    old.write_text("old\n")

    def write(path: Path, data: bytes, *, created: bool = False) -> BatchPart:
        return BatchPart(write_file_script(str(path), size=len(data)), stdin=write_input(data),
                         probe=f"pv_stat {quote(str(path))}" if created else None,
                         expected="absent\n" if created else None, absent=str(path) if created else None,
                         written=str(path), direct=True)

    outcome, _ = run_batch([BatchPart("true"), write(new, b"1\n", created=True), write(new, b"2\n"),
                            write(old, b"3\n")])
    assert [r.result.rc for r in outcome.runs] == [0, 0, 0, 0]
    assert new.read_bytes() == b"2\n" and old.read_bytes() == b"3\n"
    calls = log.read_text().splitlines()
    # One fsync before a rename (the file from before the batch), then the one syncfs of the directory.
    assert len(calls) == 2 and calls[0].startswith(str(work / ".old.provision-")) and calls[1] == f"-f -- {work}"


def test_a_write_in_the_batchs_own_shell_leaves_the_next_part_as_a_subshell_would(tmp_path: Path) -> None:
    """File writes run as functions in the batch's shell: the umask and traps come back, a failure stops."""
    from provision.tasks.shell import write_file_script, write_input

    first, second = tmp_path / "a", tmp_path / "b"
    write = BatchPart(write_file_script(str(first), mode="600", size=2), stdin=write_input(b"aa"),
                      written=str(first), direct=True)
    outcome, script = run_batch([BatchPart("umask"), write, BatchPart("umask; trap"),
                                 BatchPart(write_file_script(str(second), size=5), stdin=b"bb", direct=True),
                                 BatchPart("echo never")])
    assert "( _pvb_later" not in script and script.count("_pvb_w() {") == 2
    assert [(r.index, r.result.rc) for r in outcome.runs] == [(0, 0), (1, 0), (2, 0), (3, 4)]
    assert outcome.runs[2].result.stdout == outcome.runs[0].result.stdout  # the umask from before, no trap
    assert "short input for" in outcome.runs[3].result.stderr
    assert first.read_bytes() == b"aa" and not second.exists()
    assert not [p for p in tmp_path.iterdir() if ".provision-" in p.name]


def test_an_inline_part_runs_in_the_batchs_shell_and_its_failure_stops_the_batch(tmp_path: Path) -> None:
    from provision.tasks.shell import chain

    made = tmp_path / "made"
    outcome, script = run_batch([BatchPart(chain([f"mkdir -- {quote(str(made))}", "true"]), inline=True),
                                 BatchPart(chain(["true", "(exit 5)", "echo not-this"]), inline=True),
                                 BatchPart("echo never")])
    assert "{ mkdir -- " in script and "( mkdir" not in script
    assert [(r.index, r.result.rc, r.result.stdout) for r in outcome.runs] == [(0, 0, ""), (1, 5, "")]
    assert made.is_dir()
