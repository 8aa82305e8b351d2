"""docs/state-machines.md is generated from the state tables and must be current."""

from __future__ import annotations

from pathlib import Path

from l2tpfast.control.doc import MACHINES, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "state-machines.md"


def test_state_machine_doc_is_current() -> None:
    assert DOC.read_text() == render(), "run: python -m l2tpfast.control.doc > docs/state-machines.md"


def test_every_row_is_in_the_doc() -> None:
    text = render()
    for _, _, table in MACHINES:
        for (state, event), (action, new_state) in table.items():
            assert f"| {state.value} | {event.value} | {action.value} | {new_state.value} |" in text


def test_ppp_automaton_doc_is_current() -> None:
    from l2tpfast.ppp import doc
    from l2tpfast.ppp.fsm import TRANSITIONS

    path = DOC.parent / "ppp-automaton.md"
    text = doc.render()
    assert path.read_text() == text, "run: python -m l2tpfast.ppp.doc > docs/ppp-automaton.md"
    assert text.count("\n| ") - 1 == len(TRANSITIONS)  # one row a cell (less the header row)
