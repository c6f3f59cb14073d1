"""Release pruning and rollback targets: good ones kept, never the live one, bad ones never targets."""

from __future__ import annotations

import pytest

from provision.update.releases import BAD, BUILT, GOOD, Release, parse_list, prune, release_of, rollback_target

pytestmark = pytest.mark.unit


def r(n: int, state: str = GOOD) -> Release:
    return Release(name=f"r-{n:012x}", state=state, built_at=f"2026-01-{n:02d}T00:00:00Z")


def test_keeps_the_newest_good_ones_with_the_live_one() -> None:
    releases = [r(1), r(2), r(3), r(4), r(5)]
    assert prune(releases, r(5).name, 3) == [r(2).name, r(1).name]


def test_the_live_one_is_kept_even_when_old() -> None:
    releases = [r(1), r(2), r(3), r(4)]
    doomed = prune(releases, r(1).name, 2)
    assert r(1).name not in doomed and r(4).name not in doomed
    assert set(doomed) == {r(2).name, r(3).name}


def test_bad_releases_do_not_count_and_only_the_newest_bad_one_stays() -> None:
    releases = [r(1), r(2), r(3, BAD), r(4, BAD), r(5)]
    doomed = prune(releases, r(5).name, 3)
    assert doomed == [r(3).name]  # r1, r2, r5 are the 3 good; r4 is the newest bad


def test_a_release_built_after_the_live_one_is_left_alone() -> None:
    releases = [r(1), r(2), r(3, BUILT)]
    assert prune(releases, r(2).name, 1) == [r(1).name]


def test_names_that_are_not_releases_are_never_deleted() -> None:
    odd = Release(name="keep-me", state=GOOD, built_at="2025-01-01T00:00:00Z")
    assert prune([odd, r(1), r(2)], r(2).name, 1) == [r(1).name]


def test_rollback_target_is_the_newest_good_one_before_live() -> None:
    releases = [r(1), r(2, BAD), r(3)]
    assert rollback_target(releases, r(3).name) == r(1)
    assert rollback_target(releases, r(3).name, r(2).name) is None  # bad: never a target
    assert rollback_target(releases, r(3).name, r(3).name) is None  # the live one
    assert rollback_target([r(1)], r(1).name) is None


def test_release_of_a_bench_path() -> None:
    assert release_of("/home/frappe/benches/r-0123456789ab/frappe-bench") == "r-0123456789ab"
    assert release_of("/home/frappe/benches/r-0123456789ab") == "r-0123456789ab"
    assert release_of("") == ""


def test_parse_list() -> None:
    output = ("live=/home/frappe/benches/r-000000000002/frappe-bench\n"
              "@@provision-release@@ r-000000000001\n"
              '{"state": "good", "built_at": "2026-01-01T00:00:00Z", "apps": [{"name": "ledger", "ref": "v1"}]}\n'
              "@@provision-release@@ r-000000000002\n"
              '{"state": "good", "built_at": "2026-01-02T00:00:00Z", "apps": []}\n'
              "@@provision-release@@ r-000000000003\n\n")
    live, releases = parse_list(output)
    assert live == "r-000000000002"
    assert [(x.name, x.state, x.live) for x in releases] == [
        ("r-000000000003", BUILT, False), ("r-000000000001", GOOD, False), ("r-000000000002", GOOD, True)]
