"""Port-per-site mode: nginx ports assigned as bench assigns them, collisions refused."""

from __future__ import annotations

import pytest

from provision.errors import TemplateError
from provision.frappe_ports import nginx_site_ports

pytestmark = pytest.mark.unit


def sites(*specs: tuple[str, int | None]) -> list[dict[str, object]]:
    return [{"name": name, **({"nginx_port": port} if port else {})} for name, port in specs]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (sites(("a", None), ("b", None), ("c", None)), {"a": 80, "b": 8001, "c": 8002}),
        # the pinned 8001 is skipped by the automatic choice (two `listen 8001` before)
        (sites(("a", None), ("b", 8001), ("c", None)), {"a": 80, "b": 8001, "c": 8002}),
        (sites(("a", 80), ("b", None)), {"a": 80, "b": 8001}),
        (sites(("a", 8001), ("b", None), ("c", None)), {"a": 8001, "b": 80, "c": 8002}),
    ],
)
def test_ports_like_bench(given: list[dict[str, object]], expected: dict[str, int]) -> None:
    assert nginx_site_ports(given, 80) == expected


def test_old_port_key_and_reserved_ports() -> None:
    assert nginx_site_ports([{"name": "a", "port": 9443}, {"name": "b"}, {"name": "c"}], 8001, [8001, 8002]) == {
        "a": 9443, "b": 8003, "c": 8004}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (sites(("a", 8001), ("b", 8001)), "sites 'a' and 'b' are both pinned to nginx_port 8001"),
        ([{"name": "a", "nginx_port": "x"}], "is not a port number"),
        ([{"name": "a", "nginx_port": 8000}], "one of the bench's own local ports"),
    ],
)
def test_collisions_are_refused(given: list[dict[str, object]], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        nginx_site_ports(given, 80, [8000, 9000])
