"""A conversation's state as it is saved after every step."""

from __future__ import annotations

import dataclasses

from conversations.state import Draft, Mode, Phase, State, Survey


def states() -> list[State]:
    return [
        State(),
        State(lang="ar", mode=Mode.MENU, choices=[["طلب دعم", "apply"], ["موظف", "staff"]]),
        State(
            lang="en",
            mode=Mode.FORM,
            draft=Draft(
                "support",
                Phase.FIELD,
                "national_id",
                answers={"name": {"value": "سارة", "files": ["f1", "f2"]}},
                trail=["name"],
                started_at="2026-11-23T10:00:00+00:00",
                before={"answers": {"name": {"value": "س"}}, "trail": []},
            ),
            survey=Survey("SR-1448-00012", 4),
            offers=[3, 4],
            offer_key=["menu"],
            misunderstood=1,
        ),
    ]


def test_saved_as_asdict_would_save_it() -> None:
    for state in states():
        saved = state.to_json()
        assert saved == dataclasses.asdict(state)
        assert type(saved["mode"]) is Mode
        assert State.from_json(saved) == state


def test_saved_data_shares_nothing_that_can_change_with_the_state() -> None:
    state = states()[2]
    saved = state.to_json()
    saved["draft"]["answers"]["name"]["files"].append("f3")
    saved["draft"]["before"]["trail"].append("x")
    saved["choices"].append(["a", "b"])
    saved["offers"].append(9)
    assert state.draft is not None
    assert state.draft.answers["name"]["files"] == ["f1", "f2"]
    assert state.draft.before == {"answers": {"name": {"value": "س"}}, "trail": []}
    assert state.choices == []
    assert state.offers == [3, 4]
