from __future__ import annotations

import pytest

from core.phones import mask_phone, normalize_phone


@pytest.mark.parametrize(
    "raw",
    [
        79991234567,
        "79991234567",
        "+7 999 123-45-67",
        "8 (999) 123-45-67",
        "9991234567",
        " +79991234567 ",
    ],
)
def test_russian_numbers_in_every_shape(raw: object) -> None:
    assert normalize_phone(raw) == "+79991234567"  # type: ignore[arg-type]


def test_international_without_plus_and_invalid_input() -> None:
    assert normalize_phone("380501234567") == "+380501234567"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"
    for bad in (None, "", "12", "abc", "+7999"):
        assert normalize_phone(bad) is None


def test_mask_keeps_only_the_last_four_digits() -> None:
    assert mask_phone("+79991234567") == "+7 *** ***-45-67"
    assert mask_phone(None) == "—"
