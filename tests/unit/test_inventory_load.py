"""Loading big inventories fast changes nothing a user sees.

The golden files in ``tests/fixtures/inventories/golden/`` hold what ``provision inventory``
printed (``--list``, ``--list --show-secrets``, ``--list --yaml``, ``--host``) and what
``explain`` returned before the inventory load was made fast (commit 39a556c): the fixture
inventories, ``inventory.example.yml`` and a small inventory from the benchmark's own generator.
Each host's layers are also compared with the per-host build the shared group chains replaced.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.util
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.cli import main
from provision.errors import EXIT_BAD_INPUT, InputError, InventoryError
from provision.hostpatterns import ALL
from provision.inventory import Inventory, host_magic
from provision.inventory_vars import ordered_groups
from provision.jsontext import dumps_indented
from provision.secrets import Secret
from provision.variables import (
    GROUP_VARS,
    GROUP_VARS_ALL,
    HOST_VARS,
    INVENTORY_ALL,
    INVENTORY_GROUPS,
    INVENTORY_HOST,
    MAGIC,
    VariableLayers,
    load_vars_dir,
)
from provision.yamlfile import MAX_DEPTH, check_bounds, check_depth, parse_yaml, paused_gc

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "inventories"
GOLDEN = FIXTURES / "golden"
INVENTORIES = {
    "layering": FIXTURES / "layering" / "inventory.yml",
    "nested": FIXTURES / "nested" / "inventory.yml",
    "precedence": FIXTURES / "precedence" / "inventory.yml",
    "toplevel": FIXTURES / "toplevel" / "inventory.yml",
    "ini": FIXTURES / "ini" / "hosts.ini",
    "example": REPO / "inventory.example.yml",
}


def generate_inventory(count: int) -> str:
    """The benchmark's generator (benchmarks/inventory_load.py)."""
    spec = importlib.util.spec_from_file_location("bench_inventory_load", REPO / "benchmarks" / "inventory_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.generate_inventory(count))


def shown(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["inventory", *argv]) == 0
    return out.getvalue()


def outputs(path: Path, hosts: list[str]) -> dict[str, Any]:
    """What golden.json holds, from this code (the inventory's directory written as <dir>)."""
    p = str(path)
    inventory = Inventory.load(p)
    explain = {h: [[e.name, e.value, e.level, e.source, [list(o) for o in e.overridden]] for e in inventory.explain(h)]
               for h in hosts}
    data = {"list": shown("--list", "-i", p), "list_secrets": shown("--list", "--show-secrets", "-i", p),
            "yaml": shown("--list", "--yaml", "-i", p), "host": {h: shown("--host", h, "-i", p) for h in hosts},
            "explain": json.loads(json.dumps(explain, default=str))}
    return json.loads(json.dumps(data).replace(str(path.parent), "<dir>"))  # type: ignore[no-any-return]


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_output_is_byte_identical_to_before(name: str) -> None:
    expected = golden(name)
    assert outputs(INVENTORIES[name], list(expected["host"])) == expected


def test_benchmark_inventory_output_is_byte_identical_to_before(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(generate_inventory(40))
    expected = golden("generated-40")
    assert outputs(path, list(expected["host"])) == expected


def layers_built_per_host(inventory: Inventory, name: str) -> VariableLayers:
    """A host's layers as the inventory built them before (every level pushed for each host)."""
    host = inventory.hosts[name]
    assert inventory.base_dir is not None
    group_files, _ = load_vars_dir(inventory.base_dir / "group_vars", inventory.groups)
    host_files, _ = load_vars_dir(inventory.base_dir / "host_vars", inventory.hosts)
    layers = VariableLayers()
    for values in inventory.groups[ALL].var_maps:
        layers.push(INVENTORY_ALL, inventory.file, values, scope="group all")
    ordered = ordered_groups(inventory.groups, host.groups)
    for group in ordered:
        for values in group.var_maps:
            layers.push(INVENTORY_GROUPS, inventory.file, values, scope=f"group {group.name}")
    for path, values in group_files.get(ALL, []):
        layers.push(GROUP_VARS_ALL, path, values)
    for group in ordered:
        for path, values in group_files.get(group.name, []):
            layers.push(GROUP_VARS, path, values)
    for values in host.var_maps:
        layers.push(INVENTORY_HOST, inventory.file, values, scope=f"host {host.name}")
    for path, values in host_files.get(host.name, []):
        layers.push(HOST_VARS, path, values)
    layers.push(MAGIC, inventory.file, host_magic(inventory, host))
    return layers


@pytest.mark.parametrize("name", ["layering", "nested", "precedence", "ini"])
def test_shared_group_chains_give_each_host_the_layers_of_a_per_host_build(name: str) -> None:
    inventory = Inventory.load(INVENTORIES[name])
    for host in inventory.hosts:
        expected = layers_built_per_host(inventory, host)
        assert inventory.hosts[host].layers.layers == expected.layers
        assert inventory.hosts[host].vars == expected.merged()


def test_hosts_of_one_chain_do_not_share_their_own_levels() -> None:
    inventory = Inventory.load(INVENTORIES["layering"])
    w1, w3 = inventory.hosts["w1"], inventory.hosts["w3"]
    assert w1.groups == w3.groups  # one chain
    w1.layers.push(HOST_VARS, "test", {"only_w1": 1})
    assert "only_w1" not in w3.vars and "only_w1" in w1.vars
    assert w1.vars["inventory_hostname"] == "w1" and w3.vars["inventory_hostname"] == "w3"


def test_layering_precedence_by_level() -> None:
    inventory = Inventory.load(INVENTORIES["layering"])
    values = {name: inventory.host_vars(name) for name in inventory.hosts}
    assert values["lonely"]["level"] == "inventory_host"  # a host's own var beats group_vars/all
    assert values["loner2"]["level"] == "group_vars_all"  # beats every inventory group var
    assert values["w2"]["level"] == "host_vars_w2"  # host_vars/ beats the host's inventory vars
    assert values["w1"]["level"] == "group_vars_web"  # group_vars/web (depth 2) beats group_vars/edge (depth 1)
    assert values["db1"]["level"] == "group_vars_db_base" and values["db1"]["gv_db"] == "more"  # dir, sorted files
    assert values["db2"]["ratio"] == 0.5 and values["db2"]["started"] == "2024-05-01"
    assert values["w3"]["edge_var"] == "defined with web's second appearance"  # a group defined twice merges
    assert values["w2"]["extra"] == "second listing of w2" and values["w2"]["role"] == "app"
    assert values["db1"]["ansible_port"] == 2222
    assert values["w1"]["db_password"] == values["loner2"]["token"] == "********"
    assert inventory.host_vars("loner2", show_secrets=True)["token"] == "s3cr3t-token"
    assert "ansible_group_priority" not in values["db1"]


def test_a_host_listed_twice_in_a_group_appears_once_in_first_place() -> None:
    inventory = Inventory.from_data({"web": {"hosts": {"w[1:3]": None, "w2": {"x": 1}, "w0": None}}})
    assert inventory.groups["web"].hosts == ["w1", "w2", "w3", "w0"]
    assert inventory.host_vars("w2") == {"x": 1}


def test_ungrouped_keeps_its_order_when_grouped_hosts_leave_it() -> None:
    data = {"ungrouped": {"hosts": {"u1": None, "g1": None, "u2": None, "g2": None, "u3": None}},
            "web": {"hosts": {"g2": None, "g1": None}}}
    inventory = Inventory.from_data(data)
    assert inventory.groups["ungrouped"].hosts == ["u1", "u2", "u3"]
    assert inventory.hosts["g1"].groups == ("all", "web")


def test_errors_in_a_big_generated_inventory_name_their_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    text = generate_inventory(2000)
    lines = text.splitlines()
    last_group = max(i for i, line in enumerate(lines) if line.startswith("          hosts:"))
    cases = {
        "unknown key": ([*lines[:last_group], "          host:", *lines[last_group + 1:]], last_group + 1,
                        "unknown key 'host' in group 'africa_5'", "did you mean 'hosts'?"),
        "host vars a list": ([*lines, "            h09999: [a]"], len(lines) + 1, "must map to its variables",
                             "alone, or with an indented"),
        "duplicate key": ([*lines[:-4], lines[-4], lines[-4], *lines[-3:]], len(lines) - 2,
                          "duplicate key 'app_port'", "keep one of the two"),
    }
    for name, (broken, line, message, fix) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.yml"
        path.write_text("\n".join(broken) + "\n")
        assert main(["inventory", "--list", "-i", str(path)]) == EXIT_BAD_INPUT, name
        err = capsys.readouterr().err
        assert f"{path}:{line}:" in err and message in err and fix in err, (name, err)


def test_explain_names_the_line_of_each_key_of_a_generated_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(generate_inventory(100))
    lines = path.read_text().splitlines()
    explained = {e.name: e for e in Inventory.load(path).explain("h00100")}
    line = lines.index("            h00100:") + 3  # its app_port
    assert explained["app_port"].source == f"{path}:{line} (host h00100)"
    assert explained["rack"].source == f"{path}:{lines.index('            rack: africa_5') + 1} (group africa_5)"


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "none", "secret", "date", "tuple"] + ["dict", "list"] * (depth < 4)
    kind = rng.choice(kinds)
    if kind == "dict":
        keys: list[Any] = [rng.choice(["a", "é", "k\n\"", "z" * rng.randint(0, 3), "", "\u2603"]) for _ in range(4)]
        if rng.random() < 0.1:
            keys = [rng.randint(0, 9) for _ in range(3)]
        return {key: random_value(rng, depth + 1) for key in keys}
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "tuple":
        return tuple(rng.choice(["x", 1, None]) for _ in range(rng.randint(0, 2)))
    return {
        "str": lambda: rng.choice(["", "plain", "tab\tquote\"back\\slash", "ünï\u2603", "\x00\x1f", "\ud800"]),
        "int": lambda: rng.choice([0, -1, 2**70, 7]),
        "float": lambda: rng.choice([0.25, -0.0, 1e300, math.inf, -math.inf, math.nan, 1.0]),
        "bool": lambda: rng.choice([True, False]),
        "none": lambda: None,
        "secret": lambda: Secret("s3cret"),
        "date": lambda: datetime.date(2024, 5, 1),
    }[kind]()


def test_dumps_indented_writes_what_json_dumps_writes() -> None:
    rng = random.Random(17)
    for _ in range(3000):
        value = random_value(rng)
        assert dumps_indented(value) == json.dumps(value, indent=4, sort_keys=True, default=str), value


@pytest.mark.parametrize(
    "text",
    [
        "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v\n",
        "a: " + "[" * (MAX_DEPTH + 3) + "]" * (MAX_DEPTH + 3) + "\n",
        "a: " + "[1, " * (MAX_DEPTH - 1) + "[x, y]" + "]" * (MAX_DEPTH - 1) + "\nb: 2\n",
        "a: " + "{k: " * MAX_DEPTH + "{}" + "}" * MAX_DEPTH + "\n",
        "top:\n" + "".join(f"  - {'[' * MAX_DEPTH}{n}{']' * MAX_DEPTH}\n" for n in range(3)),
        # block and flow nesting together: neither alone reaches the bound
        "".join("  " * level + f"k{level}:\n" for level in range(45)) + "  " * 45 + "[" * 60 + "]" * 60 + "\n",
        "a:\n" + "".join("  " * level + f"- b{level}:\n" for level in range(52)),
    ],
)
def test_check_depth_refuses_the_node_check_bounds_refuses(text: str) -> None:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    with pytest.raises(InputError) as bounds:
        check_bounds(node, "f.yml")
    with pytest.raises(InputError) as depth:
        check_depth(node, "f.yml")
    assert (depth.value.message, depth.value.source, depth.value.hint) == (
        bounds.value.message, bounds.value.source, bounds.value.hint)
    with pytest.raises(InputError) as parsed:
        parse_yaml(text, "f.yml")
    assert parsed.value.source == bounds.value.source


def test_check_depth_accepts_what_check_bounds_accepts() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n" + "b: [" + "1, " * 200 + "2]\n"
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    check_bounds(node, "f.yml")
    check_depth(node, "f.yml")
    assert parse_yaml(text, "f.yml")["b"][-1] == 2


def test_paused_gc_restores_the_collector_and_nests() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
    with pytest.raises(InventoryError), paused_gc():
        Inventory.from_data([])
    assert gc.isenabled()


def yaml_files() -> list[Path]:
    found = [*REPO.glob("tests/**/*.yml"), *REPO.glob("provision/builtin/**/*.yml"), *REPO.glob("*.yml")]
    return sorted(p for p in found if "golden" not in p.parts)


def test_the_fast_constructors_build_what_pyyaml_builds() -> None:
    compared = 0
    for path in yaml_files():
        text = path.read_text()
        try:
            expected = yaml.safe_load(text)
        except yaml.YAMLError:  # a bad input on purpose, or a !secret/!vault tag
            continue
        assert parse_yaml(text, str(path)) == expected, path
        compared += 1
    assert compared > 50
    merged = parse_yaml("a: {x: 1}\nb: {<<: {y: 3}, x: 4}\nc: !!str 5\nd: [1, [2, {e: f}]]\n", "m.yml")
    assert merged == {"a": {"x": 1}, "b": {"x": 4, "y": 3}, "c": "5", "d": [1, [2, {"e": "f"}]]}
    shared = parse_yaml("base: &b {a: [1]}\nweb: *b\n", "s.yml")
    assert shared["web"] is shared["base"]
