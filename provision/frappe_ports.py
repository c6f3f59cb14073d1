"""Nginx ports of sites in port-per-site mode (``dns_multitenant: false``), assigned as bench assigns them.

``bench setup nginx`` (bench/config/nginx.py ``prepare_sites``) first collects every pinned
``nginx_port``, then gives each other site port 80 if free, else 8001 and up, skipping ports in
use. Two sites pinned to one port make it stop with an error; so do we, naming both sites. We
also keep the bench's own local ports (gunicorn, socketio, redis, ...) out of the automatic
choice, and refuse a pin on one of them: nginx could not listen there.

The template and the deploy's verify step both read this one mapping (filter
``nginx_site_ports``), so every site is checked on the port nginx really serves it on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import TemplateError

FALLBACK_START = 8001


def pinned_port(site: Mapping[str, Any]) -> int | None:
    """A site's pinned port: ``nginx_port`` (bench's key), or ``port`` (our older name)."""
    value = site.get("nginx_port", site.get("port"))
    if value in (None, ""):
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"site {site.get('name')!r}: nginx_port {value!r} is not a port number",
                            hint="e.g. nginx_port: 8001") from None
    if not 0 < port < 65536:
        raise TemplateError(f"site {site.get('name')!r}: nginx_port {port} is out of range (1-65535)")
    return port


def nginx_site_ports(sites: Iterable[Mapping[str, Any]], first_port: Any = 80,
                     reserved: Iterable[Any] = ()) -> dict[str, int]:
    """Site name -> nginx port: pinned ones kept, the others 80 if free, else 8001 and up."""
    sites = list(sites)
    local = {int(p) for p in reserved if p not in (None, "")}
    in_use: dict[int, str] = {}
    for site in sites:
        port = pinned_port(site)
        if port is None:
            continue
        if port in in_use:
            raise TemplateError(f"sites {in_use[port]!r} and {site.get('name')!r} are both pinned to nginx_port {port}",
                                hint="give each site its own nginx_port, or leave one unset to have one assigned")
        if port in local:
            raise TemplateError(f"site {site.get('name')!r}: nginx_port {port} is one of the bench's own local "
                                f"ports ({', '.join(str(p) for p in sorted(local))})", hint="pick another port")
        in_use[port] = str(site.get("name"))
    ports: dict[str, int] = {}
    for site in sites:
        name = str(site.get("name"))
        port = pinned_port(site)
        if port is None:
            port = int(first_port)
            if port in in_use or port in local:
                port = FALLBACK_START
            while port in in_use or port in local:
                port += 1
            in_use[port] = name
        ports[name] = port
    return ports
