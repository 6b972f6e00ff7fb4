"""Errors raised by the persistence layer.

Everything the store raises derives from :class:`StoreError`. SQLAlchemy, asyncpg,
aiosqlite and alembic errors are translated where they are caught (``raise ... from
exc``) so callers never need to import a driver to handle a database failure.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error raised by ``monitor.store``."""


class InvalidDatabaseUrl(StoreError):
    """A database URL naming a backend or driver clawbeat cannot use."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"database URL {url!r}: {problem}")


class StoreUnavailable(StoreError):
    """The database could not be reached or failed for a reason other than the data."""

    def __init__(self, message: str, *, operation: str) -> None:
        self.operation = operation
        super().__init__(f"{operation}: {message}")


class DataRejected(StoreError):
    """The database refused the data itself (a constraint, a type, an encoding).

    Retrying the same rows cannot succeed, unlike :class:`StoreUnavailable`.
    """

    def __init__(self, message: str, *, operation: str) -> None:
        self.operation = operation
        super().__init__(f"{operation}: {message}")


class DeviceNotFound(StoreError):
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(f"no device {device_id!r}")


class ClassNotFound(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no device class {name!r}")


class ClassExists(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"device class {name!r} already exists")


class ClassInUse(StoreError):
    """A class that cannot be deleted: devices still belong to it, or it is ``default``."""

    def __init__(self, name: str, *, devices: int) -> None:
        self.name = name
        self.devices = devices
        if devices:
            message = f"device class {name!r} still has {devices} device(s)"
        else:
            message = f"device class {name!r} is built in and cannot be deleted"
        super().__init__(message)


class SchemaMismatch(StoreError):
    """The database schema revision is not the one this clawbeat was built for."""

    def __init__(self, message: str, *, current: str | None, required: str) -> None:
        self.current = current
        self.required = required
        super().__init__(message)


class SchemaOutdated(SchemaMismatch):
    """The database is behind this clawbeat (or empty): run ``clawbeat db upgrade``."""

    def __init__(self, *, current: str | None, required: str) -> None:
        shown = current if current is not None else "nothing (an empty database)"
        super().__init__(
            f"database schema is at {shown}, this clawbeat needs {required}: "
            "run `clawbeat db upgrade`",
            current=current,
            required=required,
        )


class SchemaTooNew(SchemaMismatch):
    """The database was migrated by a newer clawbeat whose revision this one does not know."""

    def __init__(self, *, current: str, required: str) -> None:
        super().__init__(
            f"database schema is at {current}, which this clawbeat (schema {required}) "
            "does not know: it was migrated by a newer clawbeat; run that version, or "
            "downgrade the database with the newer version's `clawbeat db downgrade`",
            current=current,
            required=required,
        )


class WriterClosed(StoreError):
    """A row was handed to a write-behind writer after :meth:`WriteBehind.close`."""
