import pytest

from attnfd.schedules import alpha_at, lr_factor


@pytest.mark.parametrize(
    "schedule,start,middle,three_quarters,end",
    [
        ("constant", 2.0, 2.0, 2.0, 2.0),
        ("linear", 2.0, 2.0, 1.0, 0.0),
        ("cosine", 2.0, 2.0, 1.0, 0.0),
        ("step", 2.0, 2.0, 0.2, 0.2),
    ],
)
def test_alpha_schedule_values(schedule, start, middle, three_quarters, end):
    assert alpha_at(2.0, schedule, 0.0) == pytest.approx(start)
    assert alpha_at(2.0, schedule, 0.4999) == pytest.approx(middle)
    assert alpha_at(2.0, schedule, 0.75) == pytest.approx(three_quarters)
    assert alpha_at(2.0, schedule, 1.0) == pytest.approx(end, abs=1e-12)


def test_alpha_decay_can_start_at_the_beginning():
    assert alpha_at(1.0, "linear", 0.5, decay_start=0.0) == pytest.approx(0.5)
    assert alpha_at(1.0, "cosine", 0.25, decay_start=0.0) == pytest.approx(0.8535533905932737)


def test_lr_schedules():
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("poly", 0.5) == pytest.approx(0.5**0.9)
    with pytest.raises(ValueError):
        lr_factor("exp", 0.1)
