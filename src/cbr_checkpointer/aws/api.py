"""What the adapters use of an AWS JSON client, so that they can be given an in-memory one."""

from __future__ import annotations

from typing import Any, Protocol


class AwsJsonApi(Protocol):
    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One operation's JSON answer; raises AwsError for anything but success."""
        ...
