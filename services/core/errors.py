"""Errors the services raise, each with a message a user can act on."""
from __future__ import annotations


class WardLensError(Exception):
    """Base class: str(error) is a complete sentence for the user."""


class WrongPassword(WardLensError):
    def __init__(self) -> None:
        super().__init__("Wrong user name or password.")


class PasswordChangeRequired(WardLensError):
    """The account has a one-time password (set by an administrator): a new password must be chosen to log in."""

    def __init__(self) -> None:
        super().__init__("Your password was set by an administrator for one use: choose a new password to log in.")


class LoginThrottled(WardLensError):
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        n = int(wait_s + 0.999)
        super().__init__(f"Too many failed attempts. Try again in {n} second{'' if n == 1 else 's'}.")


class StoreDamaged(WardLensError):
    """The key was right but the database cannot be read or fails its integrity checks."""


class NotEncrypted(WardLensError):
    def __init__(self, path: object) -> None:
        super().__init__(f"{path} is a plain, unencrypted SQLite file. WardLens only opens encrypted stores.")


class KeyFileError(WardLensError):
    """The key file beside the store is missing, damaged or belongs to another store."""


class StoreNotFound(WardLensError):
    pass


class PermissionDenied(WardLensError):
    pass


class SessionLocked(WardLensError):
    def __init__(self) -> None:
        super().__init__("The session is locked. Unlock it to continue.")


class ValidationError(WardLensError):
    """Bad values from a form or file; `fields` maps field names to messages."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.fields.items()))


class ImportFileError(WardLensError):
    """The whole file is unusable (encoding, header, quoting): nothing was imported."""


class Cancelled(WardLensError):
    def __init__(self) -> None:
        super().__init__("Cancelled; nothing was changed.")


class EditConflict(WardLensError):
    """Someone else saved the same record after it was read: the later save is refused and nothing is overwritten."""

    def __init__(self, what: str, by: str, at: str) -> None:
        self.by, self.at = by or "", at or ""
        when = self.at[:16].replace("T", " ") or "an unknown time"
        self.headline = f"{what} was changed by {self.by or 'someone else'} at {when} after you opened it."
        super().__init__(f"{self.headline} Your changes were not saved: reload to see theirs, then make yours again.")
