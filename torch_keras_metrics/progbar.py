"""Keras 3's progress bar (`keras.utils.Progbar`), character for character, reading values lazily.

The lines are those Keras 3 prints: verbose=1 a live bar
`5/5 ━━━━━━━━━━━━━━━━━━━━ 0s 4ms/step - accuracy: 0.4571 - loss: 1.0846` redrawn in place,
verbose=2 one line per epoch `5/5 - 0s - 4ms/step - accuracy: 0.4571 - loss: 1.0846`; numbers as
Keras formats them (`.4f`, or `.4e` at or below 1e-3). Values are shown as given (Keras 3's
ProgbarLogger treats every value as stateful). One difference: `values` may be a callable returning
the mapping, called only when a line is drawn, so a device value is read at most once per refresh.

>>> import io
>>> out = io.StringIO()
>>> bar = Progbar(target=5, verbose=2, stream=out)
>>> bar.update(5, {"loss": 0.25, "acc": 0.0001}, finalize=True)
>>> out.getvalue().split(" - ")[3:]
['loss: 0.2500', 'acc: 1.0000e-04\\n']
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, Callable, TextIO, Union

Values = Union[Mapping, Callable[[], Mapping], None]


def dynamic_display(stream: Any = None) -> bool:
    """Whether the bar can redraw in place: a terminal or a notebook."""
    stream = stream if stream is not None else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules


def _number(avg: float, verbose: int) -> str:
    # Keras compares abs() in the live bar but the raw value in the verbose=2 line.
    small = abs(avg) > 1e-3 if verbose == 1 else avg > 1e-3
    return f" {avg:.4f}" if small else f" {avg:.4e}"


def format_time(time_per_unit: float, unit_name: str = "step") -> str:
    """Keras' step duration: `" 8ms/step"`, `" 2s/step"` or `" 950us/step"`.

    >>> format_time(0.0081)
    ' 8ms/step'
    """
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"


class Progbar:
    """A progress bar printing Keras 3's lines to `stream` (default `sys.stdout`).

    `interval` is the minimum time between two redraws of the live bar (Keras uses 0.05 s). `clock`
    gives the time in seconds (`time.time`, as Keras); pass another to control the timings shown.
    """

    def __init__(
        self,
        target: int | None,
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.1,
        unit_name: str = "step",
        stream: TextIO | None = None,
        dynamic: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stream = stream
        self._dynamic_display = dynamic_display(stream) if dynamic is None else dynamic
        self._values: dict[str, Any] = {}
        self._values_order: list[str] = []
        self._clock = clock
        self._start = clock()
        self._last_update = 0.0
        self._time_after_first_step: float | None = None
        self._prev_total_width = 0
        self._seen_so_far = 0

    def will_draw(self, current: int, finalize: bool = False) -> bool:
        """Whether `update(current, ...)` now would draw (and so read its values)."""
        if self.verbose == 1:
            return finalize or self._clock() - self._last_update >= self.interval
        return self.verbose == 2 and finalize and bool(self.target)

    def update(self, current: int, values: Values = None, finalize: bool | None = None) -> None:
        """Move to step `current`; draw if due, reading `values` (a mapping, or a callable returning one)."""
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        now = self._clock()
        drawing = self.will_draw(current, finalize)
        if drawing and values is not None:
            for k, v in (values() if callable(values) else values).items():
                if k not in self._values_order:
                    self._values_order.append(k)
                # a metric of several values (per class, per threshold) shows their mean, as Keras' bar does
                self._values[k] = float(v) if not isinstance(v, (list, tuple)) else sum(v) / max(1, len(v))
        self._seen_so_far = current
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1 and drawing:
            self._write(self._live_line(current, now, time_per_unit, finalize))
        elif self.verbose == 2 and drawing:
            numdigits = int(math.log10(self.target)) + 1
            info = f"%{numdigits}d/%d - {now - self._start:.0f}s" % (current, self.target)
            info += f" -{format_time(time_per_unit, self.unit_name)}"
            for k in self._values_order:
                info += f" - {k}:" + _number(self._values[k], 2)
            self._write(info + "\n")
        if self.verbose != 1 or drawing:
            self._last_update = now

    def _live_line(self, current: int, now: float, time_per_unit: float, finalize: bool) -> str:
        message = "\b" * self._prev_total_width + "\r" if self._dynamic_display else "\n"
        special_char_len = 0
        if self.target is not None and self.target > 0:
            numdigits = int(math.log10(self.target)) + 1
            bar = f"\x1b[1m{f'%{numdigits}d/%d' % (current, self.target)}\x1b[0m "
            special_char_len += 8
            prog_width = int(self.width * float(current) / self.target)
            if prog_width > 0:
                bar += f"\33[32m{'━' * prog_width}\x1b[0m"
                special_char_len += 9
            bar += f"\33[37m{'━' * (self.width - prog_width)}\x1b[0m"
            special_char_len += 9
        else:
            bar = f"{current:7d}/Unknown"
        if self.target is not None and self.target > 0 and not finalize:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                eta_format = f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_format = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_format = f"{int(eta)}s"
            info = f" \x1b[1m{eta_format}\x1b[0m"
        else:
            info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
        special_char_len += 8
        info += format_time(time_per_unit, self.unit_name)
        for k in self._values_order:
            info += f" - {k}:" + _number(self._values[k], 1)
        message += bar + info
        total_width = len(bar) + len(info) - special_char_len
        if self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        if finalize:
            message += "\n"
        self._prev_total_width = total_width
        return message

    def _write(self, message: str) -> None:
        write(message, self.stream)

    def _estimate_step_duration(self, current: int, now: float) -> float:
        # Keras ignores the first step (compilation, warm-up) once there are more.
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


def write(message: str, stream: Any = None) -> None:
    """Write and flush at once (to stdout by default), so a bar shows while the epoch runs."""
    stream = stream if stream is not None else sys.stdout
    stream.write(message)
    stream.flush()
