"""NetSuite-shaped errors: every refusal the sandbox makes travels as one ``NetSuiteError``.

::

    NetSuiteError              an HTTP error answered in NetSuite's ``o:errorDetails`` form
                               (status, one or more details, optional extra headers)

Handlers raise it anywhere below the HTTP layer; the app turns it into the response body that
the facts file (section 2.5) describes. There is deliberately one class: NetSuite itself tells
errors apart by status and ``o:errorCode``, not by type, so a client must do the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ERROR_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=error"

_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# NetSuite points ``type`` at the RFC section of the status; 429 is not in RFC 2616.
_RFC2616 = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
_TYPES: dict[int, str] = {
    400: f"{_RFC2616}#sec10.4.1",
    401: f"{_RFC2616}#sec10.4.2",
    403: f"{_RFC2616}#sec10.4.4",
    404: f"{_RFC2616}#sec10.4.5",
    405: f"{_RFC2616}#sec10.4.6",
    409: f"{_RFC2616}#sec10.4.10",
    415: f"{_RFC2616}#sec10.4.16",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: f"{_RFC2616}#sec10.5.1",
    502: f"{_RFC2616}#sec10.5.3",
    503: f"{_RFC2616}#sec10.5.4",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorDetail:
    """One entry of ``o:errorDetails``: what is wrong and where (body path, URL, header, param)."""

    code: str
    detail: str
    path: str | None = None
    url_path: str | None = None
    header: str | None = None
    query_param: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"detail": self.detail, "o:errorCode": self.code}
        for key, value in (
            ("o:errorPath", self.path),
            ("o:urlPath", self.url_path),
            ("o:errorHeader", self.header),
            ("o:errorQueryParam", self.query_param),
        ):
            if value is not None:
                out[key] = value
        return out


class NetSuiteError(Exception):
    """An HTTP error the sandbox answers in NetSuite's error shape."""

    def __init__(
        self,
        status: int,
        details: ErrorDetail | Sequence[ErrorDetail],
        *,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.details: tuple[ErrorDetail, ...] = (
            (details,) if isinstance(details, ErrorDetail) else tuple(details)
        )
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(f"{status}: " + "; ".join(d.detail for d in self.details))

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.details, title=self.title)


def error_body(
    status: int, details: Sequence[ErrorDetail], *, title: str | None = None
) -> dict[str, Any]:
    """The JSON body NetSuite sends with an error status."""
    return {
        "type": _TYPES.get(status, _TYPES[500]),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "o:errorDetails": [d.as_json() for d in details],
    }


def bad_request(
    code: str, detail: str, *, path: str | None = None, query_param: str | None = None
) -> NetSuiteError:
    return NetSuiteError(
        400, ErrorDetail(code=code, detail=detail, path=path, query_param=query_param)
    )


def invalid_value(path: str) -> NetSuiteError:
    """NetSuite's own wording for a reference or value it cannot accept."""
    return bad_request(
        "INVALID_VALUE",
        f"Invalid value for the resource or sub-resource field '{path}'. Provide a valid value.",
        path=path,
    )


def user_error(detail: str, *, path: str | None = None) -> NetSuiteError:
    """A business rule refused the request (NetSuite reports these as USER_ERROR)."""
    return bad_request("USER_ERROR", detail, path=path)


def not_found(url_path: str, detail: str | None = None) -> NetSuiteError:
    return NetSuiteError(
        404,
        ErrorDetail(
            code="NONEXISTENT_ID",
            detail=detail
            or "The record instance does not exist. Provide a valid record instance ID.",
            url_path=url_path,
        ),
    )
