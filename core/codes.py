"""Client codes: 8 random Crockford base32 symbols and one check symbol.

A code is read aloud at the reception desk and typed by staff, so the alphabet has no
I, L, O or U, input is forgiving (case, spaces, dashes, O->0, I/L->1), and the check symbol
catches a typo before any database lookup.

The check symbol is sum(alpha^i * d_i) in GF(32). Because every alpha^i is non-zero it
catches every single wrong symbol, and because alpha != 1 it catches every swap of two
neighbouring different symbols (Crockford's own mod-37 check needs five extra symbols,
*~$=U, that are awkward to say).
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
DATA_LENGTH = 8
CODE_LENGTH = DATA_LENGTH + 1
_VALUE = {symbol: i for i, symbol in enumerate(ALPHABET)}
_SUBSTITUTES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", " -_.\t\n")

# GF(2^5) with the primitive polynomial x^5 + x^2 + 1; alpha = x.
_EXP = [0] * 62
_x = 1
for _i in range(31):
    _EXP[_i] = _EXP[_i + 31] = _x
    _x <<= 1
    if _x & 0b100000:
        _x ^= 0b100101
_LOG = {value: i for i, value in enumerate(_EXP[:31])}


def _gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def check_symbol(data: str) -> str:
    acc = 0
    for i, symbol in enumerate(data):
        acc ^= _gf_mul(_EXP[i + 1], _VALUE[symbol])
    return ALPHABET[acc]


def generate() -> str:
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_LENGTH))
    return data + check_symbol(data)


def normalize(text: str) -> str:
    """Canonical spelling of what a person typed (not yet validated)."""
    return text.translate(_SEPARATORS).upper().translate(_SUBSTITUTES)


def parse(text: str) -> str | None:
    """The canonical code if `text` is a well-formed code with a matching check symbol."""
    code = normalize(text)
    if len(code) != CODE_LENGTH or any(symbol not in _VALUE for symbol in code):
        return None
    return code if check_symbol(code[:DATA_LENGTH]) == code[DATA_LENGTH] else None


def display(code: str) -> str:
    """Three groups of three, the way it is printed and read aloud: `7KQ-M2X-9PA`."""
    return "-".join(code[i : i + 3] for i in range(0, len(code), 3))
