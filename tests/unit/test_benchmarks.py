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


def test_ratio_column_divides_by_provision_in_the_same_phase() -> None:
    lines = report.with_ratio_column(TABLE).splitlines()
    assert lines[2].startswith("| tool | phase | wall s median | x provision | min-max |")
    assert lines[3] == "|---" * 10 + "|"
    assert lines[4].startswith("| provision | cold | 4.00 | 1.00x | 3.90-4.10 |")
    assert lines[6].startswith("| pyinfra | cold | 8.00 | 2.00x |")
    assert lines[7].startswith("| pyinfra | warm | 6.00 | 12.0x |")
    assert lines[0] == TABLE.splitlines()[0]


def test_ratio_is_absent_without_a_provision_row() -> None:
    rows = [r for r in report.parse_bench_table(TABLE) if r.tool != "provision"]
    assert report.ratio(rows, rows[0]) is None
    assert report.format_ratio(None) == "-"


def test_scale_table_and_series_per_host_count() -> None:
    results = {10: report.parse_bench_table(TABLE), 1: report.parse_bench_table(TABLE)[:2]}
    table = report.scale_table(results, ["provision", "pyinfra"]).splitlines()
    assert table[0] == "| tool | phase | 1 host | 10 hosts |"
    assert table[2] == "| provision | cold | 4.00 s | 4.00 s |"
    assert table[5] == "| pyinfra | warm | - | 6.00 s (12.0x) |"
    series = report.scale_series(results)
    assert series["pyinfra warm"] == {"hosts": [1.0, 10.0], "seconds": [None, 6.0]}
    assert series["provision cold"]["seconds"] == [4.0, 4.0]


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
