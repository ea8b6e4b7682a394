"""dabba.scheduling.Schedule against a plain dict model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dabba.scheduling import Schedule


def test_pop_due_earliest_first_and_only_due() -> None:
    s: Schedule[str] = Schedule()
    s.at("b", 20.0)
    s.at("a", 10.0)
    s.at("c", 30.0)
    assert s.next_at() == 10.0
    assert s.pop_due(25.0, 10) == ["a", "b"]
    assert list(s) == ["c"]
    assert s.pop_due(25.0, 10) == []
    assert s.next_at() == 30.0


def test_rescheduling_replaces_the_time() -> None:
    s: Schedule[str] = Schedule()
    s.at("a", 10.0)
    s.at("a", 50.0)
    assert s.pop_due(40.0, 10) == []
    assert s.next_at() == 50.0
    s.at("a", 5.0)
    assert s.pop_due(5.0, 10) == ["a"]
    assert s.next_at() is None


def test_no_later_than_only_moves_earlier() -> None:
    s: Schedule[str] = Schedule()
    s.no_later_than("a", 10.0)
    s.no_later_than("a", 20.0)
    assert s.due_at("a") == 10.0
    s.no_later_than("a", 3.0)
    assert s.due_at("a") == 3.0


def test_limit_and_ties_in_insertion_order() -> None:
    s: Schedule[str] = Schedule()
    for key in "xyzw":
        s.at(key, 1.0)
    assert s.pop_due(1.0, 3) == ["x", "y", "z"]
    assert s.pop_due(1.0, 3) == ["w"]


def test_discard() -> None:
    s: Schedule[str] = Schedule()
    s.at("a", 1.0)
    s.discard("a")
    s.discard("never")
    assert "a" not in s
    assert s.next_at() is None
    assert s.pop_due(100.0, 10) == []


def test_heap_stays_bounded_under_churn() -> None:
    s: Schedule[int] = Schedule()
    for i in range(10_000):
        s.at(i % 10, float(i))
    assert len(s) == 10
    assert len(s._heap) <= 2 * len(s) + 65  # stale entries are compacted away


ops = st.lists(
    st.one_of(
        st.tuples(st.just("at"), st.integers(0, 5), st.integers(0, 100)),
        st.tuples(st.just("earlier"), st.integers(0, 5), st.integers(0, 100)),
        st.tuples(st.just("discard"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("pop"), st.integers(1, 4), st.integers(0, 100)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(ops)
def test_behaves_like_a_dict_of_due_times(program: list[tuple[str, int, int]]) -> None:
    s: Schedule[int] = Schedule()
    model: dict[int, float] = {}
    for op, a, b in program:
        if op == "at":
            s.at(a, float(b))
            model[a] = float(b)
        elif op == "earlier":
            s.no_later_than(a, float(b))
            model[a] = min(model.get(a, float(b)), float(b))
        elif op == "discard":
            s.discard(a)
            model.pop(a, None)
        else:
            got = s.pop_due(float(b), a)
            due = sorted((t, k) for k, t in model.items() if t <= b)
            # Earliest first; among equal times any order, so compare the times popped.
            assert [model[k] for k in got] == [t for t, _ in due[:a]]
            assert len(set(got)) == len(got)
            for k in got:
                del model[k]
        assert {k: s.due_at(k) for k in s} == model
        assert s.next_at() == (min(model.values()) if model else None)
