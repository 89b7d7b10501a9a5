"""Everything a deployment could record during a request: every log record of every
logger at DEBUG, the arguments of every ``otp_auth`` and ``django.contrib.auth`` signal,
and the responses. Used to prove that no code, seed, password, grant or token leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import signals as auth_signals
from django.dispatch import Signal
from django.http import HttpRequest

from otp_auth import signals as otp_signals

__all__ = ["Recorder", "recording"]


class _Everything(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # also fills exc_text
        self.sink.append(" ".join([text, repr(record.args), str(record.__dict__)]))


def _describe(value: Any) -> str:
    """``repr`` and attributes; a request only by its repr (its POST holds the input)."""
    if isinstance(value, HttpRequest):
        return repr(value)
    attributes = getattr(value, "__dict__", None)
    return f"{value!r} {attributes!r}" if attributes is not None else repr(value)


#: The delivery hooks: their ``message`` is the text to deliver, code included, by design.
DELIVERY_SIGNALS = frozenset({"pre_send", "post_send"})


def _signals() -> list[tuple[str, Signal]]:
    found = []
    for module in (otp_signals, auth_signals):
        for name, value in vars(module).items():
            if isinstance(value, Signal) and name not in DELIVERY_SIGNALS:
                found.append((f"{module.__name__}.{name}", value))
    return found


@dataclass
class Recorder:
    logs: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)

    def response(self, response: Any) -> Any:
        """Keeps what the client saw: status, headers and body."""
        headers = " ".join(f"{k}: {v}" for k, v in response.items())
        body = response.content.decode("utf-8", "replace") if not response.streaming else ""
        self.responses.append(f"{response.status_code} {headers}\n{body}")
        return response

    def assert_clean(
        self, secrets: list[str], *, in_responses: list[str] | None = None, **seen: bool
    ) -> None:
        """No ``secrets`` in the logs or signals, and ``in_responses`` not in responses.

        ``seen`` names the channels that must have recorded something (``signals=True``),
        so that a capture that silently caught nothing cannot pass; log capture is proven
        when recording starts.
        """
        for channel, required in seen.items():
            if required:
                assert getattr(self, channel), f"nothing was captured in {channel}"
        places = {"logs": self.logs, "signals": self.signals}
        for secret in secrets:
            assert secret, "an empty secret would match everything"
            for name, texts in places.items():
                leaks = [text for text in texts if secret in text]
                assert not leaks, f"{secret!r} leaked to {name}: {leaks[0][:300]}"
        for secret in in_responses or []:
            assert secret
            leaks = [text for text in self.responses if secret in text]
            assert not leaks, f"{secret!r} shown in a response: {leaks[0][:300]}"


@contextmanager
def recording() -> Iterator[Recorder]:
    """Records logs and signals until the block ends; ``Recorder.response`` adds responses."""
    result = Recorder()
    handler = _Everything(result.logs)
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is loggers[0] or not lg.propagate:
            lg.addHandler(handler)
    receivers = []
    for name, signal in _signals():

        def receive(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            described = {key: _describe(value) for key, value in kwargs.items()}
            result.signals.append(f"{_name} {sender!r} {described}")

        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    # A record at DEBUG from the package's logger must arrive, or nothing is proven.
    logging.getLogger("otp_auth.capture-check").debug("capture check")
    assert result.logs and "capture check" in result.logs[-1], "log capture is not working"
    result.logs.clear()
    try:
        yield result
    finally:
        for signal, receive in receivers:
            signal.disconnect(receive)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(handler)
