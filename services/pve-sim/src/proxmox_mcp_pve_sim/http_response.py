"""One HTTP answer of the HTTPS face; the control endpoints build them too."""

from __future__ import annotations

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    501: "Not Implemented",
    506: "Variant Also Negotiates",
}


class Response:
    __slots__ = ("body", "close", "content_type", "reason", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        reason: str | None = None,
        *,
        content_type: str = "application/json;charset=UTF-8",
        close: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        self.reason = reason or REASONS.get(status, "Unknown")
        self.content_type = content_type
        self.close = close or status >= 400
