"""Salesforce API errors as the sandbox raises and renders them.

REST renders an error as a JSON array ``[{"message", "errorCode", "fields"}]`` with an HTTP status;
sObject Collections and composite graph bodies use ``statusCode`` instead of ``errorCode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiError:
    """One entry of a Salesforce error array."""

    error_code: str
    message: str
    fields: tuple[str, ...] = ()

    def rest_body(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.error_code, "fields": list(self.fields)}

    def dml_body(self) -> dict[str, Any]:
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields)}


class SalesforceError(Exception):
    """A request the org refuses, with the status and error array Salesforce would send."""

    def __init__(self, status: int, errors: list[ApiError] | ApiError) -> None:
        self.status = status
        self.errors = [errors] if isinstance(errors, ApiError) else list(errors)
        super().__init__("; ".join(f"{e.error_code}: {e.message}" for e in self.errors))

    def rest_body(self) -> list[dict[str, Any]]:
        return [e.rest_body() for e in self.errors]


def fail(status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> SalesforceError:
    """A :class:`SalesforceError` with one error, ready to raise."""
    return SalesforceError(status, ApiError(error_code=code, message=message, fields=fields))


def not_found() -> SalesforceError:
    return fail(404, "NOT_FOUND", "The requested resource does not exist")
