"""Fan-out of events to several reporters (``--json`` on stdout plus people on stderr)."""

from __future__ import annotations

from provision.events import HostUnreachable, PlayStarted, Recap, Reporter, TaskDone, TaskStarted


class MultiReporter:
    """Passes every event to each reporter, in the order given."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def play_started(self, event: PlayStarted) -> None:
        for reporter in self.reporters:
            reporter.play_started(event)

    def task_started(self, event: TaskStarted) -> None:
        for reporter in self.reporters:
            reporter.task_started(event)

    def task_done(self, event: TaskDone) -> None:
        for reporter in self.reporters:
            reporter.task_done(event)

    def host_unreachable(self, event: HostUnreachable) -> None:
        for reporter in self.reporters:
            reporter.host_unreachable(event)

    def warning(self, message: str, *, host: str | None = None) -> None:
        for reporter in self.reporters:
            reporter.warning(message, host=host)

    def recap(self, event: Recap) -> None:
        for reporter in self.reporters:
            reporter.recap(event)

    def close(self) -> None:
        """Closes every reporter, even if one of them fails, then re-raises the first failure."""
        failure: BaseException | None = None
        for reporter in self.reporters:
            try:
                reporter.close()
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure
