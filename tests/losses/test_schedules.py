"""Temperature and alpha schedules at known steps."""

import pytest

from kta_cli.errors import KtaError
from kta_cli.losses.schedules import ValueSchedule

TOTAL = 11  # steps 0..10, so progress = step / 10


def test_constant_ignores_the_step():
    schedule = ValueSchedule(4.0)
    assert [schedule.at(s, TOTAL) for s in (0, 5, 10)] == [4.0, 4.0, 4.0]


def test_linear_goes_from_start_to_end():
    schedule = ValueSchedule(8.0, 1.0, "linear")
    assert [schedule.at(s, TOTAL) for s in (0, 5, 10)] == pytest.approx([8.0, 4.5, 1.0])
    assert schedule.at(2, TOTAL) == pytest.approx(8.0 - 7.0 * 0.2)


def test_cosine_is_slow_at_the_ends_and_halfway_in_the_middle():
    schedule = ValueSchedule(8.0, 1.0, "cosine")
    assert schedule.at(0, TOTAL) == pytest.approx(8.0)
    assert schedule.at(5, TOTAL) == pytest.approx(4.5)
    assert schedule.at(10, TOTAL) == pytest.approx(1.0)
    # progress 0.2: 1 + 7 * (1 + cos(0.2 pi)) / 2 = 1 + 7 * 0.9045085
    assert schedule.at(2, TOTAL) == pytest.approx(7.3315595)


def test_step_moves_at_each_milestone():
    schedule = ValueSchedule(0.9, 0.3, "step", milestones=(0.25, 0.75))
    values = [schedule.at(s, TOTAL) for s in (0, 2, 3, 7, 8, 10)]
    assert values == pytest.approx([0.9, 0.9, 0.6, 0.6, 0.3, 0.3])


def test_schedule_stays_at_its_end_after_the_last_step():
    assert ValueSchedule(8.0, 1.0, "linear").at(50, TOTAL) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": 4.0, "kind": "cosin", "end": 1.0}, "did you mean 'cosine'"),
        ({"start": 4.0, "kind": "linear"}, "needs an end value"),
        ({"start": 4.0, "end": 1.0, "kind": "step", "milestones": (1.5,)}, "milestones"),
    ],
)
def test_bad_schedules_say_what_is_wrong(kwargs, message):
    with pytest.raises(KtaError, match=message):
        ValueSchedule(**kwargs)
