"""HTTP-dates (RFC 9110 5.6.7): IMF-fixdate out, the three accepted forms in."""

from __future__ import annotations

import calendar
import re
import time

__all__ = ["http_date", "parse_http_date"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NO = {m: i + 1 for i, m in enumerate(_MONTHS)}
_D = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_M = "(" + "|".join(_MONTHS) + ")"
_T = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# RFC 9110 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient accepts.
_IMF_FIXDATE = re.compile(_D + ", ([0-9]{2}) " + _M + " ([0-9]{4}) " + _T + " GMT")
_RFC850 = re.compile(
    "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-"
    + _M + "-([0-9]{2}) " + _T + " GMT"
)  # fmt: skip
_ASCTIME = re.compile(_D + " " + _M + " ([0-9 ][0-9]) " + _T + " ([0-9]{4})")


def http_date(epoch_seconds: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7) of a time, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Locale independent; fractions of a second are dropped (floor)."""
    t = time.gmtime(int(epoch_seconds // 1))
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of its three forms, or None.

    The weekday is not checked against the date; a two-digit RFC 850 year below 70 is 20yy."""
    m = _IMF_FIXDATE.fullmatch(text)
    if m is not None:
        day, mon, year, hms = m[2], m[3], int(m[4]), m.group(5, 6, 7)
    elif (m := _RFC850.fullmatch(text)) is not None:
        yy = int(m[4])
        day, mon, year, hms = m[2], m[3], yy + (2000 if yy < 70 else 1900), m.group(5, 6, 7)
    elif (m := _ASCTIME.fullmatch(text)) is not None:
        day, mon, year, hms = m[3], m[2], int(m[7]), m.group(4, 5, 6)
    else:
        return None
    return _timegm(year, _MONTH_NO[mon], int(day), *map(int, hms))


def _timegm(year: int, mon: int, day: int, h: int, mi: int, s: int) -> int | None:
    # A leap second (60) is read as :59; impossible dates are no date.
    if not (1 <= day <= calendar.monthrange(year, mon)[1] and h < 24 and mi < 60 and s < 61):
        return None
    return calendar.timegm((year, mon, day, h, mi, min(s, 59), 0, 0, 0))
