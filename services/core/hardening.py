"""Process hardening at start-up: no core dumps (they would hold the data key and decrypted pages), not
dumpable (other processes of the same user cannot ptrace it or read its /proc memory and environment), and
the password handed over in WARDLENS_PASSWORD wiped from the process's environment block once read."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def disable_core_dumps() -> bool:
    """True when both core dumps are off and the process is marked not dumpable (Linux)."""
    ok = True
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        ok = False
    libc = _libc()
    if libc is None or libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        ok = False
    return ok


def is_dumpable() -> bool:
    libc = _libc()
    return bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) if libc else True


def take_secret_from_environment(name: str) -> str | None:
    """Read an environment variable and wipe it: the bytes are zeroed in the process's original environment block
    (what /proc/PID/environ shows) as well as removed from os.environ, so later readers find nothing."""
    value = os.environ.get(name)
    libc = _libc()
    if libc is not None:
        prefix = name.encode() + b"="
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
        i = 0
        while environ[i]:
            addr = environ[i]
            if ctypes.string_at(addr, len(prefix)) == prefix:
                ctypes.memset(addr + len(prefix), 0, len(ctypes.string_at(addr)) - len(prefix))
            i += 1
    os.environ.pop(name, None)  # unsetenv: after the wipe, or the pointer to wipe would be gone
    return value
