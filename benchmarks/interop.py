"""Interop import (issue 16): Synthea FHIR R4 bundles and HL7 v2 ADT messages from ../shared/data/interop.

Rows: gunzip + json.loads of every bundle (the floor any FHIR reader pays), services.records.fhir.read_fhir on the
same files and its ratio to that floor (target <= 3), the full import into a fresh store (encounters/s, ratio to the
floor), a second identical import (must change nothing) and the HL7 v2 ADT folder (messages/s)."""
from __future__ import annotations

import gc
import gzip
import json
import os
import tempfile
from pathlib import Path

from benchmarks.cases import row
from benchmarks.store import DATA, timed

INTEROP = DATA / "interop"
BUNDLES = INTEROP / "synthea_fhir_r4" / "bundles"
ADT = INTEROP / "hl7v2" / "microsoft_fhir_converter_mit" / "adt"
PASSWORD = "bench-admin-password"
READ_TARGET = 3.0  # read_fhir / parse-only, the speed goal


def _parse_only(files: list[Path]) -> int:
    n = 0
    for f in files:
        with gzip.open(f, "rb") as g:
            n += len(json.loads(g.read()).get("entry", ()))
    return n


def _best(fn, *args, repeats: int = 2):
    """Best time of `repeats` runs (a shared machine: the best is the least disturbed), with the last result."""
    best, res = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        t, res = timed(fn, *args)
        best = min(best, t)
    return best, res


def _total(counter) -> int:
    return sum(counter.values()) if counter else 0


def run(quick: bool = False) -> list[dict]:
    files = sorted(BUNDLES.glob("*.json.gz")) if BUNDLES.is_dir() else []
    if not files:
        return [row("interop", "FHIR bundles", None, "s", note=f"skipped: no *.json.gz under {BUNDLES}")]
    files = files[:50] if quick else files
    from services.records.fhir import read_fhir
    t_parse, n_entries = _best(_parse_only, files)
    t_read, batch = _best(read_fhir, files)
    n_pat, n_enc = len(batch.patients), len(batch.encounters)
    del batch
    ratio = t_read / t_parse
    out = [row("interop", f"FHIR parse-only, {len(files)} bundles", t_parse, "s",
               note=f"gunzip + json.loads; {n_entries:,} entries; best of 2"),
           row("interop", "FHIR read_fhir", t_read, "s", note=f"{n_pat:,} patients, {n_enc:,} encounters; best of 2"),
           row("interop", "read_fhir / parse-only", ratio, "x", READ_TARGET)]

    # The full import runs as the application does: a fresh store, a desk, its records façade. The environment is
    # the tests' (dev-signed models trusted, no daily backup, a private home) and is put back afterwards.
    env = {"WARDLENS_TRUST_DEV_MODELS": "1", "WARDLENS_DAILY_BACKUP": "off"}
    saved = {k: os.environ.get(k) for k in (*env, "WARDLENS_HOME")}
    with tempfile.TemporaryDirectory(prefix="wardlens-interop-") as d:
        os.environ.update(env, WARDLENS_HOME=str(Path(d) / "home"))
        try:
            from services.desk import open_desk
            from services.site.accounts import create_store
            from services.store.keyfile import KdfParams
            path = Path(d) / "store" / "site.db"
            path.parent.mkdir()
            create_store(path, "admin", PASSWORD, KdfParams.fast())  # the tests' cheap key derivation
            desk = open_desk(path, "admin", PASSWORD)
            try:
                gc.collect()
                t_imp, rep = timed(desk.records.import_files, files)
                enc = _total(rep.counts.get("encounters"))
                gc.collect()
                t_again, again = timed(desk.records.import_files, files)
                gc.collect()
                t_hl7, hl7 = timed(desk.records.import_files, [ADT]) if ADT.is_dir() else (None, None)
            finally:
                desk.lock()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    out += [row("interop", "FHIR full import into a fresh store", t_imp, "s",
                note=f"{_total(rep.counts.get('patients')):,} patients, {enc:,} encounters, "
                     f"{rep.rejected_total:,} rejected"),
            row("interop", "  encounters per second", enc / t_imp, "enc/s", higher_is_better=True),
            # No target: the import also writes an encrypted, audited store; read_fhir's ratio is the goal.
            row("interop", "  import / parse-only", t_imp / t_parse, "x", note="informational: read + store"),
            row("interop", "FHIR second identical import", t_again, "s",
                note=f"changed {again.changed:,} (must be 0: idempotent); {again.rejected_total:,} rejected")]
    out[-1]["ok"] = again.changed == 0
    if hl7 is None:
        return out + [row("interop", "HL7 v2 ADT folder", None, "s", note=f"skipped: {ADT} absent")]
    kept = _total(hl7.counts.get("messages"))
    skipped = sum(n for what, n in hl7.skipped.items() if "message" in what)
    n_msg = kept + skipped + hl7.rejected_total
    return out + [row("interop", f"HL7 v2 ADT folder, {n_msg} messages", t_hl7, "s",
                      note=f"{kept} kept, {skipped} other types skipped, {hl7.rejected_total} rejected"),
                  row("interop", "  messages per second", n_msg / t_hl7, "msg/s", higher_is_better=True)]
