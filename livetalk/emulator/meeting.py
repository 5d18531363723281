"""Finds a proposed meeting — a calendar date, a time of day, what it is about — in a user's words. Pure.

Japanese: 「12月3日の14時にデモはいかがでしょうか」, 「12月3日14時30分から打ち合わせ」,
「12月3日午後2時半」; English: "a demo on December 3 at 2 pm", "Dec 3rd at 14:00",
"the 3rd of December at 2:30 p.m.". Full-width digits are read like ASCII ones.
Relative dates ("next Tuesday", 「来週の火曜日」) are not a concrete proposal; see
:func:`mentions_a_day`. The year is the next occurrence of the date from ``today``.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import unicodedata

YEARS_AHEAD = 8  # 29 February is looked for this many years ahead
DEFAULT_TOPIC = "meeting"
NOON_HOUR = 12

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_MONTH_WORD = r"(?P<month_name>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
              r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_ORDINAL_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_DATES = (
    re.compile(r"(?P<month>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*日"),
    re.compile(rf"\b{_MONTH_WORD}\s+(?:the\s+)?{_ORDINAL_DAY}\b", re.IGNORECASE),
    re.compile(rf"\b(?:the\s+)?{_ORDINAL_DAY}\s+(?:of\s+)?{_MONTH_WORD}(?![a-z])", re.IGNORECASE),
)
_TIMES = (
    re.compile(r"(?P<half_day>午前|午後)?\s*(?P<hour>\d{1,2})\s*時(?!間)\s*(?:(?P<minute>\d{1,2})\s*分|(?P<half>半))?"),
    re.compile(r"\b(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<meridiem>[ap])\.?\s?m\b\.?", re.IGNORECASE),
    re.compile(r"(?<![\d:])(?P<hour>\d{1,2}):(?P<minute>\d{2})(?![\d:])"),
    re.compile(r"\b(?P<noon>noon|midday)\b|正午", re.IGNORECASE),
)
# What the meeting is about: the first group with a word in the text wins.
_TOPICS = (
    ("demo", re.compile(r"\bdemo|デモ", re.IGNORECASE)),
    ("meeting", re.compile(r"\bmeeting|\bcall\b|\bappointment|打ち合わせ|打合せ|ミーティング|商談|会議|面談|アポ",
                           re.IGNORECASE)),
)
_RELATIVE_DAY = re.compile(
    r"\b(?:tomorrow|next\s+week|(?:next\s+|this\s+)?(?:mon|tues|wednes|thurs|fri|satur|sun)day)\b|"
    r"明日|明後日|来週|再来週|[月火水木金土日]曜",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A meeting proposed for ``date`` at ``hour``:``minute`` (24-hour clock) about ``topic``."""

    date: datetime.date
    hour: int
    minute: int
    topic: str

    def args(self) -> dict[str, str]:
        """The ``schedule_meeting`` arguments: ``date`` YYYY-MM-DD, ``time`` HH:MM, ``topic``."""
        return {"date": self.date.isoformat(), "time": f"{self.hour:02d}:{self.minute:02d}", "topic": self.topic}

    def spoken(self, *, japanese: bool) -> str:
        """The date and time as said aloud: 「12月3日の14時」 or "December 3 at 2 pm"."""
        if japanese:
            minute = f"{self.minute}分" if self.minute else ""
            return f"{self.date.month}月{self.date.day}日の{self.hour}時{minute}"
        hour12 = self.hour % 12 or 12
        minute = f":{self.minute:02d}" if self.minute else ""
        meridiem = "am" if self.hour < NOON_HOUR else "pm"
        return f"{_MONTHS[self.date.month - 1].title()} {self.date.day} at {hour12}{minute} {meridiem}"


def find_proposal(text: str, *, today: datetime.date) -> Proposal | None:
    """The meeting ``text`` proposes, or None unless it names both a valid date and a valid time."""
    plain = unicodedata.normalize("NFKC", text)
    found = _find_date(plain)
    if found is None:
        return None
    (month, day), span = found
    rest = plain[: span[0]] + " " * (span[1] - span[0]) + plain[span[1] :]  # the day is not an hour
    clock = _find_time(rest)
    date = _next_occurrence(month, day, today)
    if clock is None or date is None:
        return None
    return Proposal(date=date, hour=clock[0], minute=clock[1], topic=topic_of(plain))


def topic_of(text: str) -> str:
    """What a proposal is about: ``demo`` or ``meeting`` (the default)."""
    return next((topic for topic, pattern in _TOPICS if pattern.search(text)), DEFAULT_TOPIC)


def mentions_a_day(text: str) -> bool:
    """Whether ``text`` names a relative day (tomorrow, next Tuesday, 来週, 火曜日…): a vaguer next step."""
    return bool(_RELATIVE_DAY.search(unicodedata.normalize("NFKC", text)))


def _find_date(text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    for pattern in _DATES:
        match = pattern.search(text)
        if match is None:
            continue
        name = match.groupdict().get("month_name")
        month = _month_number(name) if name else int(match["month"])
        return (month, int(match["day"])), match.span()
    return None


def _month_number(name: str) -> int:
    prefix = name.lower().rstrip(".")[:3]
    return next(i for i, month in enumerate(_MONTHS, start=1) if month.startswith(prefix))


def _find_time(text: str) -> tuple[int, int] | None:
    for pattern in _TIMES:
        match = pattern.search(text)
        if match is not None:
            clock = _clock(match.groupdict())
            if clock is not None:
                return clock
    return None


def _clock(groups: dict[str, str | None]) -> tuple[int, int] | None:
    """(hour, minute) on a 24-hour clock from one time match, or None when out of range."""
    if groups.get("noon") or groups.get("hour") is None:
        return NOON_HOUR, 0
    hour = int(groups["hour"])
    minute = 30 if groups.get("half") else int(groups.get("minute") or 0)
    afternoon = groups.get("half_day") == "午後" or (groups.get("meridiem") or "").lower() == "p"
    twelve_hour = groups.get("half_day") is not None or groups.get("meridiem") is not None
    if twelve_hour:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if afternoon else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return hour, minute


def _next_occurrence(month: int, day: int, today: datetime.date) -> datetime.date | None:
    """The first date with this month and day on or after ``today``; None if there is none."""
    for year in range(today.year, today.year + YEARS_AHEAD + 1):
        try:
            candidate = datetime.date(year, month, day)
        except ValueError:
            continue  # 31 April never exists; 29 February only in leap years
        if candidate >= today:
            return candidate
    return None
