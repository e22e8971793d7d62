"""Python values to wire values (PROTOCOL.md 3.4), shared by Sender and Client."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = 1_000_000_000


def ts_ns(v, what="ts"):
    """int ns since the epoch, or a datetime (a naive one is taken as UTC)."""
    if type(v) is int:
        return v
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        d = v - _EPOCH
        return (d.days * 86400 + d.seconds) * _NS + d.microseconds * 1000
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    raise TypeError("%s: expected int ns or datetime, got %s" % (what, type(v).__name__))


def fixed(v, what):
    """A fixed8 value as it travels: str and float as given (the server parses
    a str exactly and rounds a float to 1e-8), int as whole units, Decimal as
    its exact decimal string. bool is refused (the server would too)."""
    t = type(v)
    if t is str or t is float or t is int:
        return v
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError("%s: %s is not a finite number" % (what, v))
        return format(v, "f")
    if isinstance(v, bool):
        raise TypeError("%s: bool is not a number" % what)
    for base in (int, float, str):  # subclasses (IntEnum, ...) travel as their base
        if isinstance(v, base):
            return base(v)
    raise TypeError("%s: expected str, int, float or Decimal, got %s" % (what, t.__name__))


def value(v, what):
    """Any slot value of a generic record (send()): datetime -> ns, Decimal ->
    exact string, bool refused; everything else as given (the server checks)."""
    if isinstance(v, bool):
        raise TypeError("%s: bool is not a slot value" % what)
    if isinstance(v, datetime):
        return ts_ns(v, what)
    if isinstance(v, Decimal):
        return fixed(v, what)
    return v


def query_time(v, what):
    """A query bound: int ns, datetime or RFC 3339 text (the server parses it)."""
    if v is None or isinstance(v, str):
        return v
    return ts_ns(v, what)


def interval(v):
    """A bar interval: int ns, timedelta, or a duration string ("5m")."""
    if isinstance(v, timedelta):
        return (v.days * 86400 + v.seconds) * _NS + v.microseconds * 1000
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise TypeError("interval: expected int ns, timedelta or a duration string")
    return v
