"""Keyed pseudonyms for identifiers that a de-identified role must not see."""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any


class Pseudonymiser:
    """Keyed hash (HMAC-SHA256) of identifiers: the same patient gets the same pseudonym under one key,
    and a fresh random key (per export, per session) makes pseudonyms unlinkable across them and
    irreversible without the key (which is never stored)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else os.urandom(32)

    def __call__(self, prefix: str, value: Any) -> str:
        digest = hmac.new(self._key, f"{prefix}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{prefix}-{digest[:16]}"
