"""What the flow knows of one host: the values the build playbook rendered (``update_plan``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .releases import release_of


@dataclass(frozen=True)
class SiteTarget:
    """Where the health gate reaches a site through nginx."""

    name: str
    port: int
    tls: bool = False


@dataclass(frozen=True)
class HostPlan:
    """One host's update, as the playbook rendered it."""

    host: str
    release: str
    release_path: str
    live_path: str
    bench_path: str
    shared_path: str
    frappe_home: str
    frappe_user: str
    bench_name: str
    bench_cli: str
    supervisorctl: str
    restart_cmd: str
    apps: tuple[str, ...]
    app_refs: Mapping[str, str]
    app_repos: Mapping[str, str]
    sites: tuple[SiteTarget, ...]
    dns_multitenant: bool
    nginx_http_port: int
    keep_releases: int = 3
    hooks: Mapping[str, Any] = field(default_factory=dict)
    backup_files: bool = False
    drain_timeout: float = 300
    health_timeout: float = 120
    migrate_timeout: float = 3600
    lock_dir: str = "/var/lib/provision"

    @property
    def live_release(self) -> str:
        return release_of(self.live_path)

    @property
    def release_dir(self) -> str:
        """benches/<release>: the release's record lives here, beside its bench directory."""
        return self.release_path.rsplit("/", 1)[0]

    def release_path_of(self, release: str) -> str:
        return f"{self.frappe_home}/benches/{release}/{self.bench_name}"

    def with_target(self, release: str, path: str | None = None) -> HostPlan:
        from dataclasses import replace

        return replace(self, release=release, release_path=path or self.release_path_of(release))

    def with_live(self, path: str) -> HostPlan:
        from dataclasses import replace

        return replace(self, live_path=path)

    def site_target(self, name: str) -> SiteTarget:
        for site in self.sites:
            if site.name == name:
                return site
        # not declared (but in shared/sites): reachable by name only when nginx routes by host name
        return SiteTarget(name, self.nginx_http_port if self.dns_multitenant else 0)

    @classmethod
    def from_debug(cls, host: str, data: Mapping[str, Any]) -> HostPlan:
        apps = tuple(str(a) for a in data["apps"])
        http_port = int(data.get("nginx_http_port") or 80)
        multitenant = bool(data.get("dns_multitenant"))
        # Rendered by update_plan.yml with the nginx template's own port mapping and tls.yml's view of
        # which certificates are in place, so the gate reaches each site where nginx serves it.
        rendered = data.get("site_targets") or []
        if isinstance(rendered, str):
            rendered = json.loads(rendered)
        targets = [SiteTarget(str(t["name"]), int(t["port"]), bool(t.get("tls"))) for t in rendered]
        hooks = data.get("hooks") or {}
        return cls(
            host=host, release=str(data["release"]), release_path=str(data["release_path"]),
            live_path=str(data.get("live_release_path") or ""), bench_path=str(data["bench_path"]),
            shared_path=str(data["shared_path"]), frappe_home=str(data["frappe_home"]),
            frappe_user=str(data["frappe_user"]), bench_name=str(data["bench_name"]),
            bench_cli=str(data["bench_cli"]), supervisorctl=str(data["supervisorctl_bin"]),
            restart_cmd=str(data["restart_cmd"]), apps=apps,
            app_refs=dict(zip(apps, (str(r) for r in data.get("app_refs") or []), strict=False)),
            app_repos=dict(zip(apps, (str(r) for r in data.get("app_repos") or []), strict=False)),
            sites=tuple(targets), dns_multitenant=multitenant, nginx_http_port=http_port,
            keep_releases=int(data.get("keep_releases") or 3),
            hooks=dict(hooks) if isinstance(hooks, Mapping) else {},
            backup_files=bool(data.get("backup_files")),
            drain_timeout=float(data.get("drain_timeout") or 300),
            health_timeout=float(data.get("health_timeout") or 120),
            migrate_timeout=float(data.get("migrate_timeout") or 3600),
            lock_dir=str(data.get("lock_dir") or "/var/lib/provision"),
        )
