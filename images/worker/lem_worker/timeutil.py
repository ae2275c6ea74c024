from __future__ import annotations

import datetime


def utc_now_iso() -> str:
    """ISO-8601 UTC timestamp with millisecond precision and a Z suffix."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
