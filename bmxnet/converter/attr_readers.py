"""Readers for the text of operator attributes, as strict as the operators that parse them.

Each reader turns the text into a Python value or raises ValueError saying what was
expected. The forms accepted are a subset of what both MXNet's parameter parser and
bmxnet's C++ parser (src/operator/op_params.cc) read the same way, and that the converter's
own string tests read alike: no blanks around numbers, no quotes, booleans True/False/1/0.
"""
import math
import re

MAX_INT = 2 ** 31 - 1
MAX_TUPLE = 32
_INT = re.compile(r"-?[0-9]{1,18}\Z")
_FLOAT = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\Z")


class Attr:
    """One attribute: how its text is read, its value when absent, whether it must be given."""

    def __init__(self, read, default=None, required=False):
        self.read, self.default, self.required = read, default, required


def integer(lo=-MAX_INT, hi=MAX_INT):
    """An integer in [lo, hi]."""
    def read(text):
        if not _INT.match(text):
            raise ValueError("expected an integer")
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError("must be in [%d, %d]" % (lo, hi))
        return value
    return read


def number(above=None, allowed=None):
    """A finite decimal number (greater than `above`, or one of `allowed`, when given)."""
    def read(text):
        if not _FLOAT.match(text) or not math.isfinite(float(text)):
            raise ValueError("expected a finite number")
        value = float(text)
        if above is not None and not value > above:
            raise ValueError("must be > %g" % above)
        if allowed is not None and value not in allowed:
            raise ValueError("expected one of %s" % ", ".join("%g" % a for a in allowed))
        return value
    return read


def boolean(text):
    """True / False / 1 / 0 (any case)."""
    value = text.lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError("expected True or False")
    return value in ("true", "1")


def choice(*names, any_case=False):
    """One of `names` (bmxnet's operators also take them in any case)."""
    def read(text):
        value = text.lower() if any_case else text
        if value not in names:
            raise ValueError("expected one of %s" % ", ".join(names))
        return value
    return read


def integers(lo=0, lengths=range(0, MAX_TUPLE + 1), hi=MAX_INT):
    """A tuple of integers >= lo, written (a, b), [a, b] or a, with a length in `lengths`."""
    def read(text):
        inner = text
        if text[:1] in ("(", "["):
            if text[-1:] != {"(": ")", "[": "]"}[text[0]]:
                raise ValueError("expected a tuple of integers such as (3, 3)")
            inner = text[1:-1]
        pieces = [piece.strip() for piece in inner.split(",")] if inner.strip() else []
        if pieces and pieces[-1] == "" and len(pieces) > 1:
            pieces.pop()  # "(3,)"
        if not all(_INT.match(piece) for piece in pieces):
            raise ValueError("expected a tuple of integers such as (3, 3)")
        values = tuple(int(piece) for piece in pieces)
        if not all(lo <= value <= hi for value in values):
            raise ValueError("values must be in [%d, %d]" % (lo, hi))
        if len(values) not in lengths:
            raise ValueError("expected %s values" % " or ".join(str(n) for n in lengths))
        return values
    return read


def optional(read):
    """`read`'s value, or None for the text None."""
    def read_optional(text):
        return None if text == "None" else read(text)
    return read_optional


def text_of_length(limit):
    """Any text up to `limit` characters."""
    def read(text):
        if len(text) > limit:
            raise ValueError("longer than %d characters" % limit)
        return text
    return read
