"""LiveState: folding MetricBatch records into cards, details and change sets."""

from __future__ import annotations

import pytest

from readers.dashboard.state import MAX_ALERTS, MAX_SERIES_POINTS, LiveState
from stream_processors.metrics.alerts import DEVICE_OFFLINE, LOW_ATTENTION_KIND, cleared, raised
from tests.helpers.dashboard_support import T0, batch, device, point, summary


def test_summary_makes_a_card_with_the_lesson_metrics():
    state = LiveState()
    changed = state.apply(batch([summary("r1", teaching_mode="lecture", st_rt=0.81234)]))
    assert changed == {("s1", "r1")}
    seq, cards = state.cards()
    assert seq == 1
    (card,) = cards
    assert card["classroom_id"] == "r1" and card["school_id"] == "s1"
    assert card["teaching_mode"] == "lecture" and card["st_rt"] == 0.8123
    assert card["live"] is True and card["alerts"] == [] and card["started_at"] == T0 * 1000


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ({"version": 1}, {"version": 2, "st_rt": 0.9}, 0.9),  # newer version wins
        ({"version": 5}, {"version": 4, "st_rt": 0.9}, 0.5),  # stale re-emission ignored
        ({}, {"lesson": "older", "started": T0 - 3600, "st_rt": 0.9}, 0.5),  # older lesson ignored
        ({}, {"lesson": "next", "started": T0 + 3600, "st_rt": 0.9}, 0.9),  # next lesson replaces
    ],
)
def test_latest_lesson_and_version_win(first, second, shown):
    state = LiveState()
    state.apply(batch([summary("r1", **first)]))
    state.apply(batch([summary("r1", **second)]))
    assert state.cards()[1][0]["st_rt"] == shown


def test_changes_since_returns_only_changed_classrooms_in_scope():
    state = LiveState()
    state.apply(batch([summary("a1", "A"), summary("b1", "B")]))
    seq = state.seq
    assert state.changes_since(seq) == (seq, [])
    state.apply(batch([summary("b1", "B", version=2, attention_rate=0.5)]))
    new_seq, changed = state.changes_since(seq)
    assert new_seq == seq + 1 and [c["classroom_id"] for c in changed] == ["b1"]
    assert state.changes_since(seq, school="A") == (new_seq, [])
    assert [c["classroom_id"] for c in state.cards(school="A")[1]] == ["a1"]


def test_cards_show_the_alerts_the_worker_raised_until_it_clears_them():
    state = LiveState()
    state.apply(batch([summary("r1", attention_rate=0.4)], devices=[device("r1", "cam", offline=True)]))
    card = state.cards()[1][0]
    assert card["alerts"] == [] and card["devices_offline"] == ["cam"]  # no rule judged here
    offline = raised(DEVICE_OFFLINE, "s1", "r1", T0 * 1000, 31.0, 30.0, device_id="cam")
    low = raised(LOW_ATTENTION_KIND, "s1", "r1", T0 * 1000 + 5, 0.4, 0.6, lesson_id="L-r1")
    assert state.apply_alerts([offline, low]) == {("s1", "r1")}
    assert state.cards()[1][0]["alerts"] == ["device_offline", "low_attention"]
    # cleared; a redelivered raise (lower version) does not bring it back
    state.apply_alerts([cleared(offline, T0 * 1000 + 60_000, 60.0)])
    assert state.apply_alerts([offline]) == set()
    assert state.cards()[1][0]["alerts"] == ["low_attention"]
    history = state.detail("s1", "r1")["alert_history"]
    assert [(a["kind"], a["state"]) for a in history] == [
        ("low_attention", "raised"),
        ("device_offline", "cleared"),
    ]
    assert history[1]["cleared_at"] == T0 * 1000 + 60_000 and history[0]["cleared_at"] is None


def test_alert_history_is_bounded_latest_first():
    state = LiveState()
    state.apply_alerts(
        raised(DEVICE_OFFLINE, "s1", "r1", T0 * 1000 + k, 31.0, 30.0, device_id="cam")
        for k in range(MAX_ALERTS + 5)
    )
    history = state.detail("s1", "r1")["alert_history"]
    assert len(history) == MAX_ALERTS and history[0]["raised_at"] == T0 * 1000 + MAX_ALERTS + 4


def test_detail_has_series_st_codes_and_devices_scoped():
    state = LiveState()
    state.apply(
        batch(
            [summary("r1", "A")],
            [point("r1", 0.9, 10, "A"), point("r1", 0.7, 0, "A")],
            [device("r1", "cam", school="A")],
        )
    )
    detail = state.detail("A", "r1")
    assert detail["series"]["attention_rate"] == [((T0) * 1000, 0.7), ((T0 + 10) * 1000, 0.9)]
    assert detail["st_codes"] == "TTTTSSTTSSSTTTTSSTTT"
    assert detail["device_list"][0]["kind"] == "camera"
    assert state.detail("A", "r1", scope="B") is None and state.detail("A", "nope") is None
    assert state.detail("B", "r1") is None  # the same room id at another school is another room


def test_points_of_a_new_lesson_arriving_before_its_summary_are_kept():
    state = LiveState()
    state.apply(batch([summary("r1")], [point("r1", 0.5, 0)]))
    state.apply(batch(points=[point("r1", 0.9, 4000, lesson="next")]))
    state.apply(batch([summary("r1", lesson="next", started=T0 + 4000)]))
    assert state.detail("s1", "r1")["series"]["attention_rate"] == [((T0 + 4000) * 1000, 0.9)]


def test_series_are_bounded_and_unknown_metrics_ignored():
    state = LiveState()
    state.apply(batch([summary("r1")], [point("r1", 0.5, 10 * k) for k in range(MAX_SERIES_POINTS + 50)]))
    series = state.detail("s1", "r1")["series"]["attention_rate"]
    assert len(series) == MAX_SERIES_POINTS and series[0][0] == (T0 + 500) * 1000
    assert state.apply(batch(points=[point("r1", 3.0, 0, metric="events")])) == set()


def test_summaries_trace_the_lessons_running_attention_for_the_chart():
    state = LiveState()
    state.apply(batch([summary("r1", st_samples=2, attention_rate=0.9)]))
    state.apply(batch([summary("r1", st_samples=4, attention_rate=0.8, version=2)]))
    assert state.detail("s1", "r1")["series"]["attention_lesson"] == [
        ((T0 + 60) * 1000, 0.9),
        ((T0 + 120) * 1000, 0.8),
    ]


def _two_schools_both_with_c101() -> LiveState:
    """Schools A and B each run a lesson in their own room C101 at the same time."""
    state = LiveState()
    state.apply(
        batch(
            [
                summary("C101", "A", lesson="L-1", teacher_id="t-01", st_rt=0.9, attention_rate=0.9),
                summary("C101", "B", lesson="L-1", teacher_id="t-01", st_rt=0.2, attention_rate=0.4),
            ],
            [point("C101", 0.95, 0, "A", lesson="L-1"), point("C101", 0.35, 0, "B", lesson="L-1")],
            [device("C101", "cam", school="A"), device("C101", "cam", offline=True, school="B")],
        )
    )
    state.apply_alerts(
        [
            raised(DEVICE_OFFLINE, "B", "C101", T0 * 1000, 31.0, 30.0, device_id="cam"),
            raised(LOW_ATTENTION_KIND, "B", "C101", T0 * 1000, 0.4, 0.6, lesson_id="L-1"),
        ]
    )
    return state


def test_two_schools_rooms_with_the_same_id_are_two_cards_with_their_own_values():
    state = _two_schools_both_with_c101()
    cards = {(c["school_id"], c["classroom_id"]): c for c in state.cards()[1]}
    assert set(cards) == {("A", "C101"), ("B", "C101")}
    assert (cards["A", "C101"]["st_rt"], cards["A", "C101"]["alerts"]) == (0.9, [])
    assert (cards["B", "C101"]["st_rt"], cards["B", "C101"]["alerts"]) == (
        0.2,
        ["device_offline", "low_attention"],
    )
    a, b = state.detail("A", "C101"), state.detail("B", "C101")
    assert a["series"]["attention_rate"] == [(T0 * 1000, 0.95)] and a["device_list"][0]["offline"] is False
    assert b["series"]["attention_rate"] == [(T0 * 1000, 0.35)] and b["device_list"][0]["offline"] is True


@pytest.mark.parametrize(("viewer", "other"), [("A", "B"), ("B", "A")])
def test_a_school_viewer_sees_only_its_own_c101(viewer, other):
    state = _two_schools_both_with_c101()
    (card,) = state.cards(school=viewer)[1]
    assert card["school_id"] == viewer
    assert state.detail(viewer, "C101", scope=viewer)["school_id"] == viewer
    assert state.detail(other, "C101", scope=viewer) is None
    # a change in the other school's C101 is not a change the viewer is sent
    seq = state.seq
    state.apply(batch([summary("C101", other, lesson="L-1", version=2, st_rt=0.5)]))
    assert state.changes_since(seq, school=viewer) == (state.seq, [])
    assert [c["school_id"] for c in state.changes_since(seq)[1]] == [other]


def test_a_lesson_in_one_schools_c101_does_not_replace_the_others():
    state = _two_schools_both_with_c101()
    # school B's next lesson starts an hour later; school A's card keeps its own lesson
    state.apply(batch([summary("C101", "B", lesson="L-2", started=T0 + 3600, st_rt=0.6)]))
    assert state.detail("A", "C101")["lesson_id"] == "L-1" and state.detail("A", "C101")["st_rt"] == 0.9
    assert state.detail("B", "C101")["lesson_id"] == "L-2"


def test_items_without_a_school_are_dropped_not_guessed():
    state = _two_schools_both_with_c101()
    seq = state.seq
    changed = state.apply(
        batch(
            [summary("C101", "", version=9)], [point("C101", 0.1, 10, "")], [device("C101", "tab", school="")]
        )
    )
    assert changed == set() and state.seq == seq and len(state) == 2
