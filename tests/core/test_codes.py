from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from core import codes

data_strings = st.text(alphabet=codes.ALPHABET, min_size=codes.DATA_LENGTH, max_size=8)
valid_codes = data_strings.map(lambda d: d + codes.check_symbol(d))


def test_generated_codes_are_valid_and_varied() -> None:
    generated = {codes.generate() for _ in range(500)}
    assert len(generated) == 500
    assert all(codes.parse(code) == code for code in generated)
    assert not set("ILOU") & set("".join(generated))


@given(valid_codes, st.data())
def test_normaliser_accepts_what_people_type(code: str, data: st.DataObject) -> None:
    typed = "".join(
        data.draw(st.sampled_from([ch, ch.lower()])) + data.draw(st.sampled_from(["", " ", "-"]))
        for ch in code
    )
    typed = typed.replace("0", data.draw(st.sampled_from(["0", "O", "o"])))
    typed = typed.replace("1", data.draw(st.sampled_from(["1", "I", "l", "L", "i"])))
    assert codes.parse(typed) == code
    assert codes.parse(codes.display(code)) == code


@given(valid_codes, st.integers(0, codes.CODE_LENGTH - 1), st.sampled_from(codes.ALPHABET))
def test_any_single_wrong_symbol_is_caught(code: str, pos: int, symbol: str) -> None:
    typo = code[:pos] + symbol + code[pos + 1 :]
    assert (codes.parse(typo) is None) == (typo != code)


@given(valid_codes, st.integers(0, codes.CODE_LENGTH - 2))
def test_any_swap_of_neighbours_is_caught(code: str, pos: int) -> None:
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
    assert (codes.parse(swapped) is None) == (swapped != code)


@given(st.text(alphabet=string.printable, max_size=20))
def test_garbage_never_crashes_and_rarely_parses(text: str) -> None:
    parsed = codes.parse(text)
    assert parsed is None or (len(parsed) == codes.CODE_LENGTH and codes.parse(parsed) == parsed)


def test_wrong_length_and_letters_outside_the_alphabet() -> None:
    code = codes.generate()
    assert codes.parse(code[:-1]) is None
    assert codes.parse(code + "0") is None
    assert codes.parse("U" + code[1:]) is None
    assert codes.display("ABCDEFGHJ") == "ABC-DEF-GHJ"
