"""The converter's one error type, whose message is always a single printable line."""
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text):
    """`text` with line breaks and other control characters shown as escapes."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def shown(value, limit=60):
    """A value from the input as it appears in a message: quoted, escaped and cut short."""
    try:
        text = repr(value)
    except RecursionError:
        return "(a value nested too deeply)"
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def mxnet_message(error):
    """The line of an MXNetError that says what is wrong (MXNet wraps it in tracebacks)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("[0]"):  # an extension operator's own message
            return line[3:].strip()
    for line in lines:
        if "MXNetError:" in line or "Check failed" in line:
            message = line.split("MXNetError:", 1)[-1].strip()
            return re.sub(r"^\[[0-9:]+\] \S+: ", "", message)
    return lines[0] if lines else type(error).__name__


class ConversionError(Exception):
    """A model that cannot be converted; the message is one line naming the problem."""

    def __init__(self, message):
        super().__init__(one_line(message))
