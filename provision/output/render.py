"""The look of the console output: pure functions from events to rich renderables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from provision.events import HostStats, HostUnreachable, PlayStarted, Recap, TaskDone

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

    from provision.output.redact import JsonValue

STATUS_STYLES = {
    "ok": "green",
    "changed": "yellow",
    "failed": "red",
    "skipped": "cyan",
    "unreachable": "bold red",
    "rescued": "magenta",
    "ignored": "yellow",
}
# Wide enough for every task status; "unreachable" and "warning" lines simply run one column over.
LABEL_WIDTH = 7
# Messages, diffs and data sit under the host column, so the status column stays a clean edge.
BLOCK_INDENT = LABEL_WIDTH + 2
MIN_DURATION_SHOWN = 0.1
MAX_HOSTS_IN_HEADER = 5
RECAP_COLUMNS = ("ok", "changed", "failed", "skipped", "unreachable", "rescued", "ignored")


def format_duration(seconds: float) -> str:
    """A short human duration: ``0.4s``, ``12.3s``, ``2m05s``, ``1h02m03s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def play_header(event: PlayStarted) -> Text:
    """``PLAY name  host1, host2 (+3 more)  batch 1/2  CHECK MODE``."""
    shown = ", ".join(event.hosts[:MAX_HOSTS_IN_HEADER])
    if len(event.hosts) > MAX_HOSTS_IN_HEADER:
        shown += f" (+{len(event.hosts) - MAX_HOSTS_IN_HEADER} more)"
    text = Text.assemble(("PLAY ", "bold"), (event.name, "bold"), "  ", (shown or "no hosts", "dim"))
    if event.batches > 1:
        text.append(f"  batch {event.batch}/{event.batches}")
    if event.check:
        text.append("  CHECK MODE", style="bold magenta")
    return text


def task_line(event: TaskDone, host_width: int, *, mark_check: bool = False) -> Text:
    """One line for a finished task: status, host, task, item, module, duration."""
    text = Text(style="dim" if event.status == "skipped" else "")
    text.append(event.status.ljust(LABEL_WIDTH), style=STATUS_STYLES[event.status])
    text.append("  ")
    text.append(event.host.ljust(host_width), style="bold")
    text.append("  ")
    if event.handler:
        text.append("handler: ", style="dim")
    text.append(event.task)
    if event.item is not None:
        text.append(f" [{event.item}]", style="bold")
    text.append(f" ({event.module})", style="dim")
    if event.duration >= MIN_DURATION_SHOWN:
        text.append(f" {format_duration(event.duration)}", style="dim")
    if event.ignored:
        text.append(" (ignored)", style=STATUS_STYLES["ignored"])
    if mark_check:
        text.append(" (check)", style="magenta")
    return text


class Indented:
    """Text shifted right by ``indent`` columns; wrapped lines keep the indent, no trailing padding."""

    def __init__(self, text: Text, indent: int = BLOCK_INDENT) -> None:
        self.text = text
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - self.indent, 20)
        lines = self.text.wrap(console, width)
        for line in lines:
            line.rstrip()  # wrapping leaves the breaking space at the end of the line
        yield Text("\n").join(Text(" " * self.indent) + line for line in lines)


def message_block(message: str) -> Indented:
    """A task's message, indented under the host column, every line kept."""
    return Indented(Text(message.rstrip("\n")))


def diff_block(diff: str) -> Indented:
    """A unified diff, coloured: additions green, removals red, hunk headers cyan."""
    text = Text()
    lines = diff.rstrip("\n").split("\n")
    for index, line in enumerate(lines):
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        text.append(line, style=style)
        if index < len(lines) - 1:
            text.append("\n")
    return Indented(text)


def data_block(data: JsonValue) -> Indented:
    """Registered data as YAML (``-vv``); the caller scrubs it first."""
    return Indented(Text(dump_yaml(data).rstrip("\n"), style="dim"))


def dump_yaml(data: JsonValue) -> str:
    """Block-style YAML, multi-line strings as literal blocks so command output stays readable."""
    import yaml  # only at -vv: keeps the console import cheap

    class _Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, represent_str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def unreachable_line(event: HostUnreachable, host_width: int) -> Group:
    """``unreachable  host  message`` in red; further lines of the message indented below."""
    first, _, rest = event.msg.rstrip("\n").partition("\n")
    text = Text(style="red")
    text.append("unreachable", style=STATUS_STYLES["unreachable"])
    text.append("  ")
    text.append(event.host.ljust(host_width), style="bold")
    text.append("  ")
    text.append(first)
    return Group(text, Indented(Text(rest, style="red"))) if rest else Group(text)


def warning_line(message: str, host: str | None, host_width: int) -> Text:
    """``warning  host  message`` in yellow."""
    text = Text(style="yellow")
    text.append("warning".ljust(LABEL_WIDTH), style="bold yellow")
    text.append("  ")
    if host is not None:
        text.append(host.ljust(host_width), style="bold")
        text.append("  ")
    text.append(message.rstrip("\n"))
    return text


def recap_table(hosts: dict[str, HostStats]) -> Table:
    """One row per host, one column per counter; zeros dimmed, the rest in their status colour."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("host", no_wrap=True)
    for name in RECAP_COLUMNS:
        table.add_column(name, justify="right", no_wrap=True)
    for host, stats in hosts.items():
        cells: list[Text] = [Text(host, style="bold")]
        for name in RECAP_COLUMNS:
            value = getattr(stats, name)
            cells.append(Text(str(value), style=STATUS_STYLES[name] if value else "dim"))
        table.add_row(*cells)
    return table


def recap_lines(event: Recap) -> Iterable[Text | Table]:
    """The recap: a title, the table, the wall time, and a line if the run was interrupted."""
    yield Text("RECAP", style="bold")
    yield recap_table(event.hosts)
    yield Text(f"wall time {format_duration(event.duration)}", style="dim")
    if event.interrupted:
        yield Text("interrupted: the run was stopped before every task finished", style="bold red")
