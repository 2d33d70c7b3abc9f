"""runc's ``--log FILE --log-format text|json``: what the engines read back.

With json, one object per line, ``{"level":"error","msg":"…","time":"<RFC3339>"}``
(logrus's JSON formatter, as runc writes it): containerd reads the stream and
keeps the last ``level=error`` msg, and fails when ``time`` is not RFC3339;
podman decodes the whole file as one object, and falls back to the stderr
text otherwise, so every error also goes to stderr (the CLI does that).
With text, logrus's text form: ``time="…" level=error msg="…"``.
Without ``--log`` nothing is written anywhere but stderr.
"""
from __future__ import annotations

import os
import time

from nsinit import jsontext

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")


def rfc3339_now() -> str:
    """UTC, nanoseconds, "Z": what Go's time.RFC3339Nano writes and parses."""
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def format_line(level: str, message: str, log_format: str, when: str | None = None) -> str:
    when = when or rfc3339_now()
    if log_format == "json":
        # Compact, keys in logrus's order, as runc writes it.
        return (f'{{"level":{jsontext.dumps(level)},"msg":{jsontext.dumps(message)},'
                f'"time":{jsontext.dumps(when)}}}\n')
    return f'time="{when}" level={level} msg={jsontext.dumps(message)}\n'


class RuntimeLog:
    """Lines to the --log file; debug lines only with --debug."""

    def __init__(self, path: str | None = None, log_format: str = "text", *, debug: bool = False) -> None:
        if log_format not in FORMATS:
            raise ValueError(f'--log-format: "{log_format}" is not one of {", ".join(FORMATS)}')
        self.path = path
        self.log_format = log_format
        self.debug_enabled = debug

    def write(self, level: str, message: str) -> None:
        if not self.path:
            return
        line = format_line(level, message, self.log_format).encode()
        # O_APPEND: conmon, the shim and later runtime calls share the file;
        # one write(2) per line keeps lines whole.  0644 as runc creates it.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def error(self, message: str) -> None:
        self.write("error", message)

    def warning(self, message: str) -> None:
        self.write("warning", message)

    def info(self, message: str) -> None:
        self.write("info", message)

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self.write("debug", message)
