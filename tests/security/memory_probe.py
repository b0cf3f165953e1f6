"""Run as a script by test_memory.py: open a store, lock it, then search this process's writable memory for the data
key (raw bytes and hex text). Prints the counts; each needle is itself in memory exactly once."""
import gc, re, sys
sys.path.insert(0, sys.argv[1])
from services.site.accounts import create_store, unlock
from services.store.keyfile import KdfParams
import tempfile, pathlib
d = pathlib.Path(tempfile.mkdtemp())
create_store(d / "s.db", "admin", "admin-password", KdfParams.fast())
s = unlock(d / "s.db", "admin", "admin-password")
s.db.conn.execute("SELECT count(*) FROM users").fetchone()
k = s.db.key_copy()
masked = bytes(b ^ 0x5A for b in k)
for i in range(len(k)): k[i] = 0
del k
s.lock()
gc.collect()
key = bytes(b ^ 0x5A for b in masked)
needles = {"raw": key, "hex": key.hex().encode(), "HEX": key.hex().upper().encode()}
found = {n: 0 for n in needles}
maps = open("/proc/self/maps").read().splitlines()
with open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        addr, perms = line.split()[:2]
        if "r" not in perms or "w" not in perms:
            continue
        lo, hi = (int(x, 16) for x in addr.split("-"))
        try:
            mem.seek(lo); chunk = mem.read(hi - lo)
        except (OSError, ValueError, OverflowError):
            continue
        for n, v in needles.items():
            found[n] += chunk.count(v)
print(found)
