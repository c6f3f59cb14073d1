"""Decision logic of the mariadb and site modules, from canned probe output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provision.apply import execute_module
from provision.tasks.mariadb import MariaDB, _has_password
from provision.tasks.site import Site, _installed_apps, _split, _wanted_apps

from ._modrun import FakeContext

pytestmark = pytest.mark.unit

DEBIAN_ROOT = json.dumps({"plugin": "mysql_native_password", "authentication_string": "invalid",
                          "auth_or": [{}, {"plugin": "unix_socket"}]})
WITH_PASSWORD = json.dumps({"auth_or": [{"plugin": "unix_socket"},
                                        {"plugin": "mysql_native_password", "authentication_string": "*AB12"}]})


def mariadb(state: str, *, check: bool = False) -> tuple[Any, FakeContext]:
    ctx = FakeContext(check=check)
    args = MariaDB.coerce({"root_password": "pw-1234"})
    return execute_module(MariaDB(), args, ctx, state), ctx


def test_root_password_already_works_is_ok_without_a_call() -> None:
    result, ctx = mariadb(f"login=ok\npriv={WITH_PASSWORD}\n")
    assert result.status == "ok" and not ctx.calls


def test_fresh_debian_root_gets_the_password_over_stdin() -> None:
    assert _has_password(DEBIAN_ROOT) == "no"
    result, ctx = mariadb(f"login=refused\npriv={DEBIAN_ROOT}\n")
    assert result.status == "changed"
    ((script, stdin, _),) = ctx.calls
    assert "pw-1234" not in script and b"pw-1234" in (stdin or b"")
    assert b"unix_socket OR mysql_native_password" in (stdin or b"")


def test_a_different_existing_password_fails_and_changes_nothing() -> None:
    result, ctx = mariadb(f"login=refused\npriv={WITH_PASSWORD}\n")
    assert result.status == "failed" and "refused the declared db root password" in result.msg
    assert not ctx.calls


def test_check_mode_reports_without_changing() -> None:
    result, ctx = mariadb(f"login=refused\npriv={DEBIAN_ROOT}\n", check=True)
    assert result.status == "changed" and not ctx.calls


def test_probe_keeps_the_password_out_of_command_lines() -> None:
    probe = MariaDB().probe(MariaDB.coerce({"root_password": "pw-1234"}))
    assert probe is not None and "--password" not in probe and "-p" not in probe.split()


SITE_ARGS = {"name": "s1.local", "bench": "/b/r1", "sites_dir": "/b/shared/sites", "apps": ["ledger"],
             "admin_password": "adm-pw-1", "db_root_password": "root-pw-1", "config": {"k": 1}}


def site_state(shared: str, link: str, config: dict[str, Any] | None, apps: list[str] | None) -> str:
    out = f"shared={shared}\nlink={link}\n@@provision-site@@\n"
    out += json.dumps(config) if config is not None else ""
    out += "\n@@provision-site@@\n"
    if apps is not None:
        out += "some bench noise\n" + json.dumps({"s1.local": apps}) + "\n"
    return out


def run_site(state: str, *, check: bool = False) -> tuple[Any, FakeContext]:
    ctx = FakeContext(check=check)
    return execute_module(Site(), Site.coerce(SITE_ARGS), ctx, state), ctx


def test_missing_site_is_created_with_secrets_on_stdin_then_moved_to_shared() -> None:
    result, ctx = run_site(site_state("no", "none", None, None))
    assert result.status == "changed"
    script, stdin, _ = ctx.calls[0]
    assert "new-site" in script and "--install-app ledger" in script
    assert "root-pw-1" not in script and "adm-pw-1" not in script
    assert stdin == b"root-pw-1\nadm-pw-1\nadm-pw-1\n"
    assert "mv /b/r1/sites/s1.local /b/shared/sites/s1.local" in script


def test_converged_site_is_ok_without_calls() -> None:
    result, ctx = run_site(site_state("yes", "/b/shared/sites/s1.local", {"k": 1, "db_name": "x"},
                                      ["frappe", "ledger"]))
    assert result.status == "ok" and not ctx.calls


def test_converged_site_is_ok_in_check_mode_too() -> None:
    result, ctx = run_site(site_state("yes", "/b/shared/sites/s1.local", {"k": 1}, ["frappe", "ledger"]), check=True)
    assert result.status == "ok" and not ctx.calls


def test_existing_site_gets_missing_apps_and_keys_only() -> None:
    result, ctx = run_site(site_state("yes", "/b/shared/sites/s1.local", {"k": 0}, ["frappe"]))
    assert result.status == "changed"
    scripts = [script for script, _, _ in ctx.calls]
    assert any("install-app ledger" in s for s in scripts)
    assert any("site_config.json" in s for s in scripts)
    assert not any("new-site" in s for s in scripts)


def test_site_of_a_new_release_is_linked() -> None:
    result, ctx = run_site(site_state("yes", "none", {"k": 1}, None))
    assert result.status == "changed"
    assert "ln -sfn /b/shared/sites/s1.local /b/r1/sites/s1.local" in ctx.calls[0][0]


def test_helpers() -> None:
    assert _wanted_apps(["ledger", "frappe", "ledger"]) == ["frappe", "ledger"]
    assert _installed_apps('noise\n{"s1": ["frappe"]}\n', "s1") == ["frappe"]
    flags, config, apps = _split(site_state("yes", "x", {"a": 1}, ["frappe"]))
    assert flags == {"shared": "yes", "link": "x"} and json.loads(config) == {"a": 1}
    assert _installed_apps(apps, "s1.local") == ["frappe"]


JOIN_CONFIG = {"db_name": "_abc", "db_password": "site-db-pw-77", "db_host": "10.0.0.4", "db_port": 3306}


def run_join(state: str, *, check: bool = False) -> tuple[Any, FakeContext]:
    ctx = FakeContext(check=check)
    args = Site.coerce({"name": "s1.local", "bench": "/b/r1", "sites_dir": "/b/shared/sites",
                        "site_config": json.dumps(JOIN_CONFIG)})
    return execute_module(Site(), args, ctx, state), ctx


def test_a_site_another_host_created_is_joined_with_its_config_on_stdin() -> None:
    result, ctx = run_join(site_state("no", "none", None, None))
    assert result.status == "changed" and "joined" in result.msg
    ((script, stdin, _),) = ctx.calls
    assert "site-db-pw-77" not in script and "new-site" not in script
    assert json.loads(stdin or b"") == JOIN_CONFIG
    assert "ln -sfn /b/shared/sites/s1.local /b/r1/sites/s1.local" in script
    assert "mkdir -p /b/shared/sites/s1.local/public/files" in script


def test_a_joined_site_with_the_same_config_is_ok_and_a_different_one_is_replaced() -> None:
    result, ctx = run_join(site_state("yes", "/b/shared/sites/s1.local", JOIN_CONFIG, ["frappe"]))
    assert result.status == "ok" and not ctx.calls
    result, ctx = run_join(site_state("yes", "/b/shared/sites/s1.local", {**JOIN_CONFIG, "db_password": "old"},
                                      ["frappe"]))
    assert result.status == "changed" and "site_config.json from the host that created it" in result.msg


def test_a_new_site_against_a_db_host_passes_it_to_new_site() -> None:
    ctx = FakeContext()
    args = Site.coerce({**SITE_ARGS, "db_host": "10.0.0.4", "db_port": 3307})
    execute_module(Site(), args, ctx, site_state("no", "none", None, None))
    assert "--db-host 10.0.0.4 --db-port 3307" in ctx.calls[0][0]
