"""The shape shared by the state tables of RFC 2661 section 7 (STYLE.md 3).

A table maps ``(state, input)`` to ``(action, new state)``. The RFC's rows often list several
states or events in one cell; :func:`expand_rows` writes each out, refusing a pair twice.
Whether a message is "acceptable" is decided before the lookup (``RECV_X_OK``/``RECV_X_BAD``);
where a table does not split that row, :func:`lookup` falls back to the plain input.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

StateT = TypeVar("StateT", bound=enum.Enum)
InputT = TypeVar("InputT", bound=enum.Enum)
ActionT = TypeVar("ActionT", bound=enum.Enum)


def expand_rows(
    *rows: tuple[tuple[StateT, ...], tuple[InputT, ...], ActionT, StateT | None],
) -> dict[tuple[StateT, InputT], tuple[ActionT, StateT]]:
    """One entry per (state, input) of each row; a None new state means "stay"."""
    table: dict[tuple[StateT, InputT], tuple[ActionT, StateT]] = {}
    for states, inputs, action, new_state in rows:
        for state in states:
            for event in inputs:
                if (state, event) in table:
                    raise ValueError(f"({state}, {event}) is in the table twice")
                table[(state, event)] = (action, state if new_state is None else new_state)
    return table


def lookup(
    table: Mapping[tuple[StateT, InputT], tuple[ActionT, StateT]],
    state: StateT,
    event: InputT,
    generic: Mapping[InputT, InputT],
) -> tuple[ActionT, StateT] | None:
    """The row for (state, event), else for (state, the plain form of event), else None."""
    found = table.get((state, event))
    if found is None and event in generic:
        found = table.get((state, generic[event]))
    return found
