"""Schedules against their formulas and the papers' numbers."""
import math

import pytest
import tensorflow as tf

from tfbin import schedules


def test_ede_matches_irnet_numbers():
    s = schedules.ede(0.1, 10, 400)
    assert s["t"](0) == pytest.approx(0.1)
    assert s["t"](200) == pytest.approx(1.0)
    assert s["t"](399) == pytest.approx(9.886, abs=5e-4)
    for i in (0, 57, 199, 200, 399):
        official = 10 ** (math.log10(0.1) + (math.log10(10) - math.log10(0.1)) * i / 400)
        assert s["t"](i) == pytest.approx(official)
        assert s["k"](i) == pytest.approx(1 / official if official < 1 else 1.0)
    assert s["k"](100) == pytest.approx(10 ** 0.5)


def test_shapes_of_each_schedule():
    lin = schedules.Linear(2, 10, epochs=4)
    assert [lin(e) for e in (-1, 0, 1, 4, 9)] == pytest.approx([2, 2, 4, 10, 10])
    cos = schedules.Cosine(1, 3, epochs=2)
    assert [cos(0), cos(1), cos(2), cos(5)] == pytest.approx([1, 2, 3, 3])
    exp = schedules.Exponential(1, 1000, epochs=3)
    assert [exp(0), exp(1), exp(1.5), exp(3)] == pytest.approx([1, 10, 10**1.5, 1000])
    step = schedules.Step(1, 20, every=40, epochs=300)
    assert all(step(e) == math.floor(e / 40) * 20 + 1 for e in range(300))
    assert schedules.Constant(5)(123.4) == 5


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.Constant(3.0),
        schedules.Linear(0.5, 4, 7),
        schedules.Exponential(0.01, 10, 400),
        schedules.Cosine(1, 100, 3),
        schedules.Step(1, 20, 40, 300),
        schedules.ede(0.001, 10, 400)["k"],
    ],
)
def test_serialization_round_trip(schedule):
    clone = schedules.get(tf.keras.utils.serialize_keras_object(schedule))
    assert clone == schedule
    assert [clone(e) for e in (0, 0.5, 2, 33.3)] == [schedule(e) for e in (0, 0.5, 2, 33.3)]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: schedules.Linear(1, 2, epochs=0), "epochs"),
        (lambda: schedules.Exponential(0, 2, epochs=3), "start must be > 0"),
        (lambda: schedules.Exponential(1, -2, epochs=3), "end must be > 0"),
        (lambda: schedules.Cosine(float("nan"), 2, epochs=3), "finite"),
        (lambda: schedules.Step(1, 1, every=0, epochs=3), "every"),
        (lambda: schedules.ede(10, 0.1, 3), "t_max"),
        (lambda: schedules.get("fast"), "Expected a tfbin schedule"),
    ],
)
def test_invalid_parameters_say_what_is_wrong(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
