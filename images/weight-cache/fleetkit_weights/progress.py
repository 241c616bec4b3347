"""Rate-limited progress lines on stderr (TTY or not) and human-readable units."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from fleetkit_weights.result import fmt_bytes, fmt_rate  # noqa: F401 - re-exported


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts bytes from many threads and prints a line every ``interval`` seconds.

    On a TTY the line is redrawn in place; otherwise one line is appended per interval
    (suitable for `kubectl logs`). Nothing is printed for transfers shorter than one interval.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, interval: float | None = None,
                 enabled: bool = True):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.enabled = enabled and self.interval > 0
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._last = (self._t0, 0)
        self._drawn = False

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def start(self) -> "Progress":
        self._t0 = time.monotonic()
        self._last = (self._t0, self.done)
        self._start_done = self.done
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def _print(self) -> None:
        now = time.monotonic()
        done = self.done
        last_t, last_done = self._last
        self._last = (now, done)
        rate = (done - last_done) / max(now - last_t, 1e-6)
        avg = (done - self._start_done) / max(now - self._t0, 1e-6)
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = (self.total - done) / avg if avg > 0 else 0
        line = (
            f"fleetkit-weights: {self.label}: {fmt_bytes(done)} / {fmt_bytes(self.total)} ({pct:.1f}%) "
            f"{fmt_rate(rate)} ETA {fmt_duration(eta)}"
        )
        try:
            if self.tty:
                self.stream.write("\r\x1b[K" + line)
                self._drawn = True
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
