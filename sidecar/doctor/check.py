"""One doctor check's answer, and how doctor writes a span of time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    status: Status
    line: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if abs(hours) < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"
