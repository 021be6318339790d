"""Errors a user can act on. Each message names the problem, what was observed and the fix."""

from __future__ import annotations


class PgStandbyError(Exception):
    """Base class of every error pytest-pgstandby raises on purpose."""


class ConfigurationError(PgStandbyError):
    """An option, ini key, environment variable or marker has a value we cannot use."""


class BinariesNotFoundError(PgStandbyError):
    """No usable PostgreSQL server binaries were found."""


class UnsafeDataDirError(PgStandbyError):
    """A data directory lies outside the directories the harness created; refused."""


class DockerUnavailableError(PgStandbyError):
    """No Docker daemon answers."""


class ImageMissingError(PgStandbyError):
    """The lab image is not present in the local Docker engine."""


class NameClashError(PgStandbyError):
    """A container or network we did not create already uses a name we need."""


class SetupFailedError(PgStandbyError):
    """A lab script or a server exited before the node was ready."""


class WaitTimeoutError(PgStandbyError, TimeoutError):
    """A bounded wait ran out; the message says what was awaited and what was last seen."""


class FilesUnavailableError(PgStandbyError):
    """A server's data directory cannot be read from here (say, a bare DSN was given)."""


class NotOwnedError(PgStandbyError):
    """A verb that changes a server (stop, promote, ...) was asked of one the harness did
    not start; the harness never changes someone else's server."""


class UnsupportedError(PgStandbyError):
    """A backend cannot do what was asked; the message says which, why, and what to use."""


class UnsupportedVersionError(BinariesNotFoundError):
    """The PostgreSQL found is older than the procedure supports (12: ``standby.signal``)."""


class VersionMismatchError(ConfigurationError):
    """The server that runs is not the PostgreSQL major the ``version`` setting asked."""


class TooManyStandbysError(ConfigurationError):
    """More standbys were asked for than the primary can serve (``max_wal_senders``,
    ``max_replication_slots``); refused before any standby is built."""


class ImageIncompleteError(SetupFailedError):
    """The image lacks a program the documented procedure runs (``pg_basebackup``, say)."""


class ReplicationAuthError(SetupFailedError):
    """The standby's ``pg_basebackup`` could not log in to its upstream as the replication
    user: the password (or pg_hba.conf) does not match what setup-primary.sh made."""


class BaseBackupError(SetupFailedError):
    """The standby's ``pg_basebackup`` failed for another reason it states (too few WAL
    senders on the upstream, say)."""


class PrimaryNotReadyError(WaitTimeoutError):
    """A standby's upstream never accepted connections within the bound."""


class WrongRoleError(ConfigurationError):
    """A verb called on a server of the wrong role (``promote()`` on a primary,
    ``pause_replay()`` on one): refused at once, naming what the server is."""


class ServerDownError(PgStandbyError):
    """A verb needs a server the harness started and that is not running now (a test
    stopped or killed it): said at once, not after the wait's timeout."""
