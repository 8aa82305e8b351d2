"""A recording ``fsm.Layer`` for the PPP automaton tests (a plain module: conftest.py names collide)."""

from __future__ import annotations


class RecordingLayer:
    """Records the automaton's this-layer callbacks; ``fail_on_link_failed`` for NCPs, which never
    fail the link."""

    def __init__(self, *, fail_on_link_failed: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failures: list[str] = []
        self.rejected: list[int] = []
        self.fail_on_link_failed = fail_on_link_failed

    def this_layer_up(self, protocol: int, now: float) -> None:
        self.calls.append(("up", protocol))

    def this_layer_down(self, protocol: int, now: float) -> None:
        self.calls.append(("down", protocol))

    def this_layer_started(self, protocol: int, now: float) -> None:
        self.calls.append(("started", protocol))

    def this_layer_finished(self, protocol: int, now: float) -> None:
        self.calls.append(("finished", protocol))

    def link_failed(self, protocol: int, reason: str, now: float) -> None:
        if self.fail_on_link_failed:
            raise AssertionError(f"NCPs never fail the link: {reason}")
        self.failures.append(reason)

    def protocol_rejected(self, rejected_protocol: int, now: float) -> None:
        self.rejected.append(rejected_protocol)
