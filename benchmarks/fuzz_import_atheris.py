"""Coverage-guided fuzzing of the CSV import with atheris (a command, not a CI test).

    python -m benchmarks.fuzz_import_atheris -atheris_runs=20000 [-max_len=4096]

The oracle is the one of tests/test_fuzz_import.py: the import either returns a report (the store grew
by exactly the imported encounters; every rejected row has a distinct line number and a reason) or
raises ImportFileError and the store is unchanged. Any other exception is a finding (atheris stops and
writes the input to crash-<sha1>). Seeds: the header plus a few real rows of the demo sample.
"""
from __future__ import annotations

import gzip
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from services.records import importer  # noqa: E402

from services.site.accounts import create_store, unlock  # noqa: E402
from services.core.errors import ImportFileError  # noqa: E402
from services.store.keyfile import KdfParams  # noqa: E402

_work = Path(tempfile.mkdtemp(prefix="wardlens-atheris-"))
create_store(_work / "site.db", "admin", "admin-password", KdfParams.fast())
SESSION = unlock(_work / "site.db", "admin", "admin-password")
TABLES = ("patients", "encounters", "diagnoses", "medications", "lab_results")


def _counts() -> tuple:
    return tuple(SESSION.db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)


def test_one_input(data: bytes) -> None:
    before = _counts()
    try:
        report = importer.import_uci_csv(SESSION, io.BytesIO(data), name="fuzz.csv")
    except ImportFileError:
        if _counts() != before or SESSION.db.conn.in_transaction:
            raise AssertionError("a refused file changed the store")
        return
    after = _counts()
    if after[1] - before[1] != report.imported:
        raise AssertionError("imported count differs from what the store holds")
    lines = [r.line for r in report.rejected]
    if len(set(lines)) != len(lines) or any(n < 2 or not r.reason for n, r in zip(lines, report.rejected)):
        raise AssertionError(f"bad rejection report {report.rejected[:5]}")


def main() -> None:
    seed_dir = _work / "seeds"
    seed_dir.mkdir()
    lines = gzip.open(ROOT / "resources" / "demo" / "uci_sample.csv.gz", "rb").read().splitlines(keepends=True)
    (seed_dir / "rows").write_bytes(b"".join(lines[:4]))
    (seed_dir / "header").write_bytes(lines[0])
    argv = sys.argv + ([str(seed_dir)] if not any(not a.startswith("-") for a in sys.argv[1:]) else [])
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
