"""How a connector says a call failed: ConnectorError, and the one classifier that picks its class.

Every vendor answer becomes one of the design's error classes (`sync.models.ErrorClass`); the
engine retries the transient ones and dead-letters the rest. The rules are the same for every
vendor — an HTTP status points to a class, the vendor's error code may point to another, and a
fixed precedence decides between them — so each vendor only *declares* its codes:

    ERROR_CODES = CodeTable({
        ErrorClass.RATE_LIMIT: {"REQUEST_LIMIT_EXCEEDED"},
        ErrorClass.DUPLICATE: {"DUPLICATE_VALUE"},
    })
    classify(response.status_code, "DUPLICATE_VALUE", ERROR_CODES)  # → ErrorClass.DUPLICATE
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kombu.exceptions
import psycopg
import redis.exceptions
import requests
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError

from sync.models import TRANSIENT_ERROR_CLASSES, ErrorClass


class ConnectorError(Exception):
    """A call failed, classified into one of the design's error classes.

    `message` is the target system's own words; `field` the field it named, if any.
    """

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        system: str = "",
        field: str = "",
        code: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        response: Any = None,
        document: dict | None = None,
    ):
        super().__init__(message)
        self.error_class = ErrorClass(error_class)
        self.message = message
        self.system = system
        self.field = field
        self.code = code
        self.status_code = status_code
        self.retry_after = retry_after
        self.response = response if response is not None else {}
        # the business document a mapping failed on: {document_number, account_name, amount, currency}
        self.document = document or {}

    @property
    def transient(self) -> bool:
        return self.error_class in TRANSIENT_ERROR_CLASSES

    def __repr__(self) -> str:
        return f"ConnectorError({self.error_class.value}, {self.message!r}, field={self.field!r}, status={self.status_code})"


# What an HTTP status alone says (any other status ≥ 500: unavailable; anything else: validation).
STATUS_CLASSES: Mapping[int, ErrorClass] = {
    300: ErrorClass.DUPLICATE,  # Multiple Choices: more than one record matches
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.CONFLICT,
    429: ErrorClass.RATE_LIMIT,
    504: ErrorClass.TIMEOUT,
}

# When the status and the code point to different classes, the one listed first wins:
# a 403 that says REQUEST_LIMIT_EXCEEDED is a rate limit, a 409 that says DUPLICATE_VALUE a conflict.
PRECEDENCE: tuple[ErrorClass, ...] = (
    ErrorClass.RATE_LIMIT,
    ErrorClass.AUTH,
    ErrorClass.NOT_FOUND,
    ErrorClass.CONFLICT,
    ErrorClass.DUPLICATE,
    ErrorClass.TIMEOUT,
    ErrorClass.UNAVAILABLE,
)


@dataclass(frozen=True)
class CodeTable:
    """One vendor's error codes, by the class each one means.

    `by_class` maps a class to the vendor's codes for it (compared without regard to case).
    `precedence` orders the classes when status and code disagree (default PRECEDENCE).
    `decisive_statuses` are statuses whose class no code changes (Salesforce: 300 and 401).
    """

    by_class: Mapping[ErrorClass, Iterable[str]] = field(default_factory=dict)
    precedence: tuple[ErrorClass, ...] = PRECEDENCE
    decisive_statuses: frozenset[int] = frozenset()
    codes: Mapping[str, ErrorClass] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        codes: dict[str, ErrorClass] = {}
        for error_class, names in self.by_class.items():
            if error_class not in self.precedence:
                raise ValueError(f"{error_class} is not in the table's precedence")
            for name in names:
                if codes.setdefault(name.upper(), error_class) != error_class:
                    raise ValueError(f"error code {name} is listed under two classes")
        object.__setattr__(self, "codes", codes)
        if set(STATUS_CLASSES.values()) - set(self.precedence) or ErrorClass.UNAVAILABLE not in self.precedence:
            raise ValueError("the precedence must rank every class a status can mean")


STATUS_ONLY = CodeTable()  # for answers that carry no vendor code


def classify(status: int, code: str | Iterable[str] | None = None, table: CodeTable = STATUS_ONLY) -> ErrorClass:
    """HTTP status + the vendor's error code(s) → error class, by `table`.

    `code` may be several strings (Stripe sends an error code and an error type); empty ones
    are ignored. With neither a status rule nor a known code, the answer is `validation`.
    """
    by_status = STATUS_CLASSES.get(status) or (ErrorClass.UNAVAILABLE if status >= 500 else None)
    if by_status is not None and status in table.decisive_statuses:
        return by_status
    names = [code] if isinstance(code, str) else list(code or ())
    found = [table.codes[name.upper()] for name in names if name and name.upper() in table.codes]
    if by_status is not None:
        found.append(by_status)
    if not found:
        return ErrorClass.VALIDATION
    return min(found, key=table.precedence.index)


# --- infrastructure: the hub's own database, broker and network -------------------------------------
# connection lost / timed out: the hub's database (Django's wrappers and psycopg's own), the broker
# (redis, kombu), sockets, and HTTP below the connector (requests)
_LOST: tuple[type, ...] = (
    DjangoOperationalError,
    DjangoInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    requests.ConnectionError,
    ConnectionError,
    EOFError,
)
_SLOW: tuple[type, ...] = (TimeoutError, redis.exceptions.TimeoutError, requests.Timeout)
_CONNECTION_ERRNOS = frozenset(
    {32, 54, 60, 61, 104, 110, 111, 113}
)  # EPIPE, ECONNRESET (BSD), ETIMEDOUT (BSD), ECONNREFUSED (BSD), ECONNRESET, ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH


def infrastructure_error(exc: BaseException, *, system: str = "hub") -> ConnectorError | None:
    """A lost database connection, broker connection, socket or timeout — anywhere in the exception's
    chain — as a transient ConnectorError (`timeout` or `unavailable`); None for anything else.

    A step that crashed on one of these did nothing wrong with its data: it is retried, never
    dead-lettered as `mapping`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectorError):
            return current if current.transient else None
        if isinstance(current, _SLOW):
            return ConnectorError(ErrorClass.TIMEOUT, f"infrastructure timeout: {type(current).__name__}: {current}"[:500], system=system)
        if isinstance(current, _LOST) or (isinstance(current, OSError) and current.errno in _CONNECTION_ERRNOS):
            return ConnectorError(ErrorClass.UNAVAILABLE, f"connection lost: {type(current).__name__}: {current}"[:500], system=system)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None
