"""``template``: render a Jinja2 template on the control host and write it like ``copy``.

Only the content differs from ``copy``: everything else (checksum compare, one-call atomic
write, validate, backup, diff) is ``copy.Upload``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from .base import Arg, PlanContext
from .copy import _UPLOAD_ARGS, Upload


class Template(Upload):
    """Render a template (project templates/ first, then the built-in ones) and write it on the host.

    src: template name, e.g. nginx.conf.j2 (rendered with the host's variables)
    dest: path on the host; an existing directory receives the file under src's name without .j2
    mode: octal mode, quoted: '0644' (default: keep the old file's, 0644 for a new one)
    owner: user name owning the file
    group: group name owning the file
    backup: keep the old file as dest.<timestamp>~ when it changes
    validate: command checking the new file before it goes live, %s is the file: 'nginx -t -c %s'
    force: replace a file whose content differs (default true); false only creates a missing file
    """

    name = "template"
    args = {"src": Arg(str, required=True), **_UPLOAD_ARGS}

    def source_name(self, args: dict[str, Any]) -> str | None:
        return posixpath.basename(str(args["src"])).removesuffix(".j2")

    def content(self, args: dict[str, Any], ctx: PlanContext) -> bytes:
        return ctx.render_template(args["src"]).text.encode()

    @classmethod
    def templates(cls, args: Mapping[str, Any]) -> list[Any]:
        return [args.get("src")]
