"""The benchmark runner's pure helpers: inventories from the lab's host list, tables with ratios.

Nothing here measures or asserts a wall time: the numbers come from ``benchmarks/run.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sys.modules.setdefault(name, module)  # the scripts import each other by plain name (scalereport: benchreport)
    return module


report = _load("benchreport")

HEADER = ("| tool | phase | wall s median | min-max | changes (sum over hosts) | ssh conns/host | sessions/host | rc "
          "| end-state digest |")
TABLE = f"""converge-50, 2 hosts, forks/parallel 10, 3 reps, medians (min-max)

{HEADER}
|---|---|---|---|---|---|---|---|---|
| provision | cold | 4.00 | 3.90-4.10 | 10 | 1 | 101 | 0 | 86f52228025c |
| provision | warm | 0.50 | 0.45-0.60 | 0 | 1 | 2 | 0 | - |
| pyinfra | cold | 8.00 | 7.00-9.00 | 100 | 1 | 163 | 0 | 86f52228025c |
| pyinfra | warm | 6.00 | 5.50-6.50 | 0 | 1 | 91 | 0 | - |
"""

NEUTRAL = {
    "user": "root", "key": "/lab/id_ed25519", "known_hosts": "/lab/known_hosts",
    "hosts": [{"name": "lab1", "address": "10.213.77.11", "port": 22,
               "vars": {"host_name": "lab1", "host_ip": "10.213.77.11", "host_index": 1, "app_port": 8001,
                        "db_name": "db_lab1"}}],
}


def test_first_hosts_keeps_the_first_lines_in_order() -> None:
    tsv = "# lab\nlab1\t10.0.0.11\t22\nlab2\t10.0.0.12\t22\n\nlab3\t10.0.0.13\t22\n"
    assert report.first_hosts(tsv, 2) == "lab1\t10.0.0.11\t22\nlab2\t10.0.0.12\t22\n"


def test_first_hosts_refuses_more_hosts_than_listed() -> None:
    with pytest.raises(ValueError, match="lists 1 hosts, 3 wanted"):
        report.first_hosts("lab1\t10.0.0.11\n", 3)


def test_provision_inventory_carries_connection_and_the_five_host_vars() -> None:
    data = yaml.safe_load(report.provision_inventory(NEUTRAL))
    lab = data["all"]["children"]["lab"]
    assert lab["hosts"]["lab1"] == {"ssh_host": "10.213.77.11", "ssh_port": 22, "host_name": "lab1",
                                    "host_ip": "10.213.77.11", "host_index": 1, "app_port": 8001,
                                    "db_name": "db_lab1"}
    assert lab["vars"] == {"ssh_user": "root", "ssh_private_key_file": "/lab/id_ed25519",
                           "ssh_known_hosts_file": "/lab/known_hosts"}


def test_parse_bench_table_reads_tool_phase_and_median() -> None:
    rows = report.parse_bench_table(TABLE)
    assert [(r.tool, r.phase, r.median_s) for r in rows] == [
        ("provision", "cold", 4.0), ("provision", "warm", 0.5), ("pyinfra", "cold", 8.0), ("pyinfra", "warm", 6.0)]


FLOOR_ROWS = """| openssh-floor | cold | 2.00 | 1.90-2.10 | 50 | 1 | 1 | 0 | 86f52228025c |
| openssh-floor | warm | 0.40 | 0.35-0.45 | 0 | 1 | 1 | 0 | - |
"""
TABLE_WITH_FLOOR = TABLE.replace("| provision | cold", FLOOR_ROWS + "| provision | cold", 1)


def test_ratio_columns_divide_by_the_floor_and_by_provision_in_the_same_phase() -> None:
    cpu = {("provision", "cold"): 0.1234, ("pyinfra", "warm"): 1.5}
    lines = report.with_ratio_column(TABLE_WITH_FLOOR, cpu).splitlines()
    assert lines[2].startswith("| tool | phase | wall s median | x floor | x provision | CPU s/host | min-max |")
    assert lines[3] == "|---" * 12 + "|"
    assert lines[4].startswith("| openssh-floor | cold | 2.00 | 1.00x | 0.50x | - | 1.90-2.10 |")
    assert lines[6].startswith("| provision | cold | 4.00 | 2.00x | 1.00x | 0.123 | 3.90-4.10 |")
    assert lines[8].startswith("| pyinfra | cold | 8.00 | 4.00x | 2.00x | - |")
    assert lines[9].startswith("| pyinfra | warm | 6.00 | 15.0x | 12.0x | 1.500 |")
    assert lines[0] == TABLE.splitlines()[0]


def test_augmented_rows_read_back_by_column_name() -> None:
    rows = report.parse_bench_table(report.with_ratio_column(TABLE_WITH_FLOOR, {("provision", "warm"): 0.05}))
    provision_warm = next(r for r in rows if r.tool == "provision" and r.phase == "warm")
    assert provision_warm.median_s == 0.5
    assert provision_warm.number("CPU s/host") == 0.05
    assert provision_warm.number("x floor") == 1.25
    assert provision_warm.number("sessions/host") == 2
    assert provision_warm.number("no such column") is None
    assert rows[0].number("CPU s/host") is None  # "-"


def test_a_result_page_parses_to_its_tool_rows_only() -> None:
    augmented = report.with_ratio_column(TABLE_WITH_FLOOR)
    rows = report.parse_bench_table(augmented)
    page = "# title\n\n" + augmented + "\n" + report.targets_section(rows, hosts=10, reps=3)
    assert report.parse_bench_table(page) == rows
    assert [r.tool for r in rows] == ["openssh-floor"] * 2 + ["provision"] * 2 + ["pyinfra"] * 2


def test_ratio_is_absent_without_a_provision_row() -> None:
    rows = [r for r in report.parse_bench_table(TABLE) if r.tool != "provision"]
    assert report.ratio(rows, rows[0]) is None
    assert report.format_ratio(None) == "-"
    assert "| pyinfra | cold | 8.00 | - | - | - |" in report.with_ratio_column(TABLE.replace("| provision |", "| x |"))


# -- control-host CPU ---------------------------------------------------------------------------------------


def _records(*labels_cpu: tuple[str, float]) -> list[dict[str, object]]:
    return [{"label": label, "cpu_s": cpu, "wall_s": 1.0, "rc": 0} for label, cpu in labels_cpu]


def test_cpu_records_are_assigned_in_run_bench_order() -> None:
    order = ["provision", "ansible-mitogen-linear", "pyinfra"]
    records = _records(("provision", 1.0), ("provision", 0.2), ("ansible-playbook", 5.0), ("ansible-playbook", 4.0),
                       ("pyinfra", 3.0), ("pyinfra", 2.0),
                       ("provision", 3.0), ("provision", 0.4), ("ansible-playbook", 6.0), ("ansible-playbook", 4.5),
                       ("pyinfra", 3.5), ("pyinfra", 2.5))
    assigned = report.assign_cpu(records, order, reps=2)
    assert assigned[("provision", "cold")] == [1.0, 3.0]
    assert assigned[("ansible-mitogen-linear", "warm")] == [4.0, 4.5]
    per_host = report.cpu_per_host(assigned, hosts=10)
    assert per_host[("provision", "cold")] == pytest.approx(0.2)
    assert per_host[("pyinfra", "warm")] == pytest.approx(0.225)


@pytest.mark.parametrize("records, message", [
    (_records(("provision", 1.0)), "1 CPU records for 4 runs"),
    (_records(("provision", 1.0), ("provision", 0.2), ("provision", 1.0), ("pyinfra", 1.0)),
     "'provision' where 'pyinfra' ran"),
])
def test_cpu_records_that_do_not_fit_the_runs_are_refused(records: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report.assign_cpu(records, ["provision", "pyinfra"], reps=1)


cpu_wrap = _load("cpu_wrap")


def test_proc_stat_ticks_and_parent_read_past_a_command_name_with_spaces_and_brackets() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    line = "4242 (ssh: /tmp/cp (x)) S 17 4242 4242 0 -1 4194560 120 0 0 0 11 7 3 2 20 0 1 0 999 0 0\n"
    assert cpu_wrap.stat_ticks(line) == 11 + 7 + 3 + 2
    assert cpu_wrap.stat_parent(line) == 17


def test_cpu_wrap_counts_the_tree_and_passes_the_exit_code(tmp_path: Path) -> None:
    import json
    import subprocess

    log = tmp_path / "cpu.jsonl"
    burn = "python3 -c 'sum(range(2_000_000))'"
    detached = f"({burn} &); {burn}; exit 3"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "cpu_wrap.py"), str(log), "t", "sh", "-c", detached],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 3
    record = json.loads(log.read_text())
    assert record["label"] == "t" and record["rc"] == 3
    assert record["cpu_s"] > 0 and record["cpu_s"] >= record["user_s"]


# -- targets ----------------------------------------------------------------------------------------------


def test_targets_met_and_not_met_from_the_medians() -> None:
    rows = report.parse_bench_table(TABLE_WITH_FLOOR)
    section = report.targets_section(rows, hosts=10, reps=3)
    assert "Note:" not in section
    lines = section.splitlines()
    # cold: 4.0 / 8.0 = 0.5 of pyinfra's (limit 0.25), 2x the floor (limit 1.5), 101 sessions (limit 3)
    assert "| first run at most 1/4 of pyinfra's time | cold | 0.25x | 0.50x | not met |" in lines
    assert "| first run at most 1.5x the OpenSSH floor (all changes as one script) | cold | 1.50x | 2.00x | not met |" \
        in lines
    assert "| first run at most 3 SSH sessions per host | cold | 3 | 101 | not met |" in lines
    # warm: 0.5 / 0.4 = 1.25x the floor (limit 1.2), 2 sessions (limit 2: met)
    assert ("| converged run at most 1.2x the OpenSSH floor (the checks as one script) | warm | 1.20x | 1.25x "
            "| not met |") in lines
    assert "| converged run at most 2 SSH sessions per host | warm | 2 | 2 | met |" in lines
    assert lines[-1] == "1 of 5 targets met."


def test_targets_all_met() -> None:
    table = TABLE_WITH_FLOOR.replace("| provision | cold | 4.00 | 3.90-4.10 | 10 | 1 | 101 |",
                                     "| provision | cold | 1.90 | 1.90-2.10 | 10 | 1 | 3 |")
    table = table.replace("| provision | warm | 0.50 |", "| provision | warm | 0.44 |")
    assert report.targets_section(report.parse_bench_table(table), hosts=10, reps=3).endswith("5 of 5 targets met.\n")


def test_targets_without_a_floor_or_pyinfra_are_not_measured_and_small_runs_say_provisional() -> None:
    rows = [r for r in report.parse_bench_table(TABLE) if r.tool == "provision"]
    section = report.targets_section(rows, hosts=2, reps=1)
    assert "Note: the targets are set for 10 hosts; this run has 2; medians of 1 repetition" in section
    assert "provisional" in section
    assert section.count("| not measured |") == 3
    assert section.splitlines()[-1] == "1 of 5 targets met (3 not measured)."


# -- scale ------------------------------------------------------------------------------------------------

scale = _load("scalereport")


def test_scale_plan_runs_forks_above_the_host_count_once() -> None:
    assert scale.scale_plan([100, 1, 10, 30], [50, 10]) == [(1, 10), (10, 10), (30, 10), (30, 50), (100, 10),
                                                            (100, 50)]
    assert scale.scale_plan([10], [10]) == [(10, 10)]


def _page(median_cold: float, cpu_cold: float) -> list[object]:
    table = TABLE_WITH_FLOOR.replace("| provision | cold | 4.00 |", f"| provision | cold | {median_cold:.2f} |")
    return report.parse_bench_table(report.with_ratio_column(table, {("provision", "cold"): cpu_cold,
                                                                      ("provision", "warm"): 0.02}))


def test_scale_tables_series_and_flatness() -> None:
    results = {(1, 10): _page(1.0, 0.5), (10, 10): _page(4.0, 0.1), (100, 10): _page(30.0, 0.12),
               (100, 50): _page(20.0, 0.15)}
    text = scale.scale_tables(results, ["openssh-floor", "provision", "pyinfra"])
    lines = text.splitlines()
    assert "| tool | phase | 1 host | 10 hosts | 100 hosts, forks 10 | 100 hosts, forks 50 |" in lines
    assert "| provision | cold | 1.00 s (0.50x) | 4.00 s (2.00x) | 30.00 s (15.0x) | 20.00 s (10.0x) |" in lines
    assert "| openssh-floor | cold | 2.00 s | 2.00 s | 2.00 s | 2.00 s |" in lines
    assert "| provision | cold | 0.500 | 0.100 | 0.120 | 0.150 |" in lines
    series = scale.scale_series(results, [10, 50])
    assert series["provision cold f10"] == {"hosts": [1.0, 10.0, 100.0], "seconds": [1.0, 4.0, 30.0],
                                            "cpu_per_host": [0.5, 0.1, 0.12]}
    # 1 and 10 hosts at forks 50 are the forks-10 runs (every host at once either way)
    assert series["provision cold f50"]["seconds"] == [1.0, 4.0, 20.0]
    assert scale.flatness(results)[0] == ("provision cold, forks 10: 0.100 CPU s/host at 10 hosts, "
                                          "0.120 at 100 (1.20x)")
    assert scale.flatness({(1, 10): _page(1.0, 0.5)}) == []


def test_page_provision_names_the_commit_a_page_measured() -> None:
    page = "# converge-50 on 10 lab hosts\n\nprovision at commit 1945d4255cf0 (0.1.0, Python 3.11.7); pyinfra 3.10.0."
    assert report.page_provision(page) == "provision at commit 1945d4255cf0"
    assert report.page_provision("provision from the working tree (0.1.0)") == "provision from the working tree"
    assert report.page_provision("no header") is None


def _tree(root: Path) -> list[tuple[str, str, str]]:
    """Every path under ``root`` with its mode and content: what run_bench.py's digest compares."""
    return sorted((str(p.relative_to(root)), oct(p.stat().st_mode & 0o7777),
                   p.read_text() if p.is_file() else "") for p in root.rglob("*"))


def test_openssh_floor_leaves_provisions_end_state_and_counts_50_then_0(tmp_path: Path) -> None:
    import subprocess

    floor = _load("openssh_floor")
    host = {"name": "lab1", "address": "127.0.0.1", "port": 22,
            "vars": {"host_name": "lab1", "host_ip": "10.0.0.2", "host_index": 1, "app_port": 8001,
                     "db_name": "db_lab1"}}
    script = floor.host_script(host, floor.load_template(), base=str(tmp_path / "floor"))
    counts = [subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
              for _ in range(2)]
    assert [c.strip().splitlines()[-1] for c in counts] == ["CHANGED=50", "CHANGED=0"]

    # The same playbook, less its facts assertion: a local connection gathers no facts.
    plays = yaml.safe_load((BENCHMARKS / "converge50.yml").read_text())
    plays[0]["tasks"] = [t for t in plays[0]["tasks"] if "assert" not in t]
    playbook = tmp_path / "bench" / "converge50.yml"
    playbook.parent.mkdir()
    playbook.write_text(yaml.safe_dump(plays))
    (playbook.parent / "templates").symlink_to(BENCHMARKS / "templates")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"lab1": {"ansible_connection": "local",
                                                                     **host["vars"]}}}}))
    result = subprocess.run([sys.executable, "-m", "provision", "playbook", str(playbook),
                             "-i", str(inventory), "-e", f"base={tmp_path / 'provision'}"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _tree(tmp_path / "floor") == _tree(tmp_path / "provision")
# -- the real jobs ----------------------------------------------------------------------------------------

jobs = _load("jobsreport")


def test_unanswered_seconds_from_outage_to_the_next_answer() -> None:
    assert jobs.unanswered_seconds([]) == 0
    assert jobs.unanswered_seconds([(0.0, True), (0.2, True)]) == 0
    samples = [(0.0, True), (1.0, False), (1.2, False), (2.0, True), (3.0, False), (3.5, True), (4.0, False)]
    # 1.0 -> 2.0, 3.0 -> 3.5, and 4.0 until the last sample (4.0): 1.5 s
    assert jobs.unanswered_seconds(samples) == pytest.approx(1.5)
    assert jobs.unanswered_seconds([(0.0, False), (0.5, False), (1.5, False)]) == pytest.approx(1.5)


def _run(name: str = "first deploy") -> object:
    stamped = [(1.5, {"event": "play_start"}),
               (2.0, {"event": "task", "host": "lab1", "task": "apt packages", "duration": 40.0, "status": "changed"}),
               (2.5, {"event": "task", "host": "lab2", "task": "site", "label": "s3|x", "duration": 9.5,
                      "status": "ok"}),
               (3.0, {"event": "task", "host": "lab1", "task": "facts", "duration": 0.2, "status": "ok"}),
               (3.1, {"event": "recap", "hosts": {}})]
    return jobs.JobRun(name, "deploy prod --json", 61.25, 0, {"lab1": 3, "lab2": 2},
                       {"lab1": {"ok": 10, "changed": 4, "failed": 0}, "lab2": {"ok": 8, "changed": 3, "failed": 0}},
                       stamped, {"s1.local": 0.4}, {"s1.local": 120})


def test_job_summary_slowest_tasks_and_unanswered_sites() -> None:
    run = _run()
    assert jobs.slowest(run.stamped, 2) == [("lab1", "apt packages", 40.0, "changed"),
                                            ("lab2", "site [s3|x]", 9.5, "ok")]
    assert jobs.first_task_at(run.stamped) == 2.0
    assert jobs.totals(run.recap) == {"ok": 18, "changed": 7, "failed": 0}
    table = jobs.summary_table([run]).splitlines()
    assert table[2] == "| first deploy | 61.2 | 0 | lab1 3, lab2 2 | 18 / 7 / 0 | 2.0 s |"
    where = jobs.where_time_goes(run)
    assert "| lab2 | site [s3/x] | 9.50 | ok |" in where  # a | in a label does not break the table
    assert "| s1.local | 120 | 0.4 |" in jobs.unanswered_table(run)


# -- inventory load ---------------------------------------------------------------------------------------

inventory_load = _load("inventory_load")


def test_generated_inventory_has_every_host_once_with_its_vars() -> None:
    data = yaml.safe_load(inventory_load.generate_inventory(45))
    groups = data["all"]["children"]
    hosts = {name: values for parent in groups.values() for group in parent["children"].values()
             for name, values in group["hosts"].items()}
    assert len(hosts) == 45 and "h00045" in hosts
    assert hosts["h00001"] == {"ssh_host": "10.0.0.2", "app_port": 8001, "db_name": "db_h00001",
                               "sites": [{"name": "s1.example.test"}]}
    assert len({h["ssh_host"] for h in hosts.values()}) == 45


def test_broken_inventory_repeats_a_key_on_the_line_the_loader_names() -> None:
    from provision.errors import InputError
    from provision.yamlfile import parse_yaml

    text, line = inventory_load.broken(inventory_load.generate_inventory(3))
    lines = text.splitlines()
    assert lines[line - 1] == lines[line - 2] and lines[line - 1].strip().startswith("ssh_host:")
    with pytest.raises(InputError, match="duplicate key 'ssh_host'") as error:
        parse_yaml(text, "inv.yml")
    assert error.value.source is not None and error.value.source.line == line
