"""The migrate decision: changed paths → migrate or not, and the reason shown to people."""

from __future__ import annotations

import pytest

from provision.update.decide import AppChange, decide_app, decide_site, decide_sites, path_needs_migrate

pytestmark = pytest.mark.unit

A, B = "a" * 40, "b" * 40


@pytest.mark.parametrize(("path", "expected"), [
    ("ledger/hooks.py", True),
    ("ledger/ledger/doctype/entry/entry.json", True),
    ("ledger/patches.txt", True),
    ("ledger/patches/v2_add_memo.py", True),
    ("ledger/fixtures/custom_field.csv", True),
    ("ledger/custom/x.py", True),
    ("ledger/page.py", False),
    ("ledger/__init__.py", False),
    ("ledger/public/js/ledger.bundle.js", False),
    ("pyproject.toml", False),
    ("ledger/patches_helper.py", False),
    ("README.md", False),
])
def test_paths_that_need_migrate(path: str, expected: bool) -> None:
    assert path_needs_migrate(path) is expected


def test_python_only_change_needs_no_migrate_and_says_what_changed() -> None:
    decision = decide_app(AppChange("ledger", A, B, ("ledger/page.py", "ledger/__init__.py")))
    assert not decision.migrate
    assert decision.reason == "ledger aaaaaaaaaa..bbbbbbbbbb: 2 file(s) changed, none needs migrate"


def test_patch_change_migrates_and_names_the_files() -> None:
    decision = decide_app(AppChange("ledger", A, B, ("ledger/page.py", "ledger/patches.txt",
                                                     "ledger/patches/v2.py", "ledger/hooks.py", "x/y.json")))
    assert decision.migrate
    assert decision.reason == ("ledger aaaaaaaaaa..bbbbbbbbbb: ledger/patches.txt, ledger/patches/v2.py, "
                               "ledger/hooks.py (+1 more) changed")


@pytest.mark.parametrize(("change", "reason"), [
    (AppChange("ledger", A, B, None), "cannot compare the commits, migrating to be safe"),
    (AppChange("crm", None, B, ()), "crm is new in this release"),
    (AppChange("crm", A, None, ()), "crm is not in the target release"),
])
def test_when_unsure_migrate(change: AppChange, reason: str) -> None:
    decision = decide_app(change)
    assert decision.migrate and reason in decision.reason


def test_same_commit_is_unchanged() -> None:
    assert not decide_app(AppChange("frappe", A, A, ())).migrate


def test_a_site_migrates_when_any_installed_app_does() -> None:
    changes = {"frappe": AppChange("frappe", A, A, ()),
               "ledger": AppChange("ledger", A, B, ("ledger/patches.txt",))}
    assert decide_site("s1", ["frappe", "ledger"], changes).migrate
    site = decide_site("s2", ["frappe"], changes)
    assert not site.migrate and site.reason == "no installed app changed"


def test_unknown_installed_apps_or_an_unknown_app_list_mean_migrate() -> None:
    changes = {"frappe": AppChange("frappe", A, A, ())}
    assert decide_site("s1", None, changes).migrate
    assert "not part of the release" in decide_site("s1", ["frappe", "other"], changes).reason


def test_decide_sites_in_name_order() -> None:
    changes = [AppChange("frappe", A, A, ())]
    assert [d.site for d in decide_sites({"b": ["frappe"], "a": ["frappe"]}, changes)] == ["a", "b"]
