"""Errors the account functions raise; their messages are safe to show to a user."""

from __future__ import annotations


class AccountsError(Exception):
    """Base class: the message says what is wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AccountsError, ValueError):
    """A field has a value that is not allowed (bad time zone, slug, origin, e-mail, ...)."""


class NotFound(AccountsError, LookupError):
    """The project, client or user named does not exist."""


class Conflict(AccountsError):
    """The change would break a uniqueness rule (project id, e-mail, Plausible domain, ...)."""
