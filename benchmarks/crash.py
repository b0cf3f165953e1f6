"""Crash consistency: a forked child writes to a real encrypted store and is killed with SIGKILL at a
random moment; after every kill the parent checks that the store opens with its key, passes
cipher_integrity_check, integrity_check and foreign_key_check, that every commit the child acknowledged
is present, and that no transaction is half-applied.

    python -m benchmarks.crash --kills 1000 [--seed 1] [--json benchmarks/results/crash.json]

Workloads (rotated per kill):
  edit     PatientService.add_patient / update_patient, one acknowledgement per commit
  import   import_uci_csv of a generated 400-row file; its encounters must be all there or none
  backup   services.site.backup.backup; an acknowledged backup must verify, an unfinished one must not exist
           under its final name (only its '.partial' may be left, which the next backup clears)
  migrate  a store taken up the schema one migration at a time; its version never goes back and its
           tables always match exactly one version

The child is forked from this process (modules already imported), so a kill costs milliseconds rather
than an interpreter start. The child appends "ack ..." lines to a file with one os.write each, only
AFTER the call that commits has returned; the parent reads them after the kill.

What a SIGKILL does and does not test: the process dies at any instruction, with SQLite's WAL, the key
file rewrite and the backup rename half-done; the operating system's page cache survives. Power loss
(data still in the page cache) is not simulated here; that is what synchronous=FULL is for.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.site import backup as backup_mod  # noqa: E402
from services.site.accounts import create_store, unlock  # noqa: E402
from services.store.database import Database  # noqa: E402
from services.records.importer import import_uci_csv  # noqa: E402
from services.store.keyfile import KdfParams, KeyFile, key_file_path  # noqa: E402
from services.store.migrations import LATEST, MIGRATIONS, _statements, current_version, migrate  # noqa: E402
from services.records.patients import PatientService  # noqa: E402
from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS  # noqa: E402
from services.store.verify import verify_connection  # noqa: E402

USER, PASSWORD = "admin", "admin-password"
IMPORT_ROWS = 400
TAG_SPAN = 1000          # encounter ids of import tag t: t*TAG_SPAN + 1 .. t*TAG_SPAN + IMPORT_ROWS
FRESH_EVERY = 40         # start a fresh main store every N kills so checks stay fast
WORKLOADS = ("edit", "import", "backup", "migrate", "edit", "import")


# --- the child ----------------------------------------------------------------------------------

_TRUTH = "SELECT d.code, e.patient_id FROM diagnoses d JOIN encounters e ON e.id = d.encounter_id"
PATIENT_CODES_DRIFT = (f"SELECT (SELECT count(*) FROM (SELECT code, patient_id FROM patient_codes EXCEPT {_TRUTH})) "
                       f"+ (SELECT count(*) FROM ({_TRUTH} EXCEPT SELECT code, patient_id FROM patient_codes))")

class Acks:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode("utf-8"))


def _csv_for(tag: int) -> bytes:
    rng = random.Random(tag)
    head = list(ENCOUNTER_COLUMNS)
    lines = [",".join(head)]
    for i in range(1, IMPORT_ROWS + 1):
        row = {c: "?" for c in head}
        row.update({"encounter_id": str(tag * TAG_SPAN + i), "patient_nbr": str(900_000_000 + rng.randrange(3000)),
                    "race": "Caucasian", "gender": rng.choice(["Male", "Female"]), "age": "[60-70)",
                    "admission_type_id": "1", "discharge_disposition_id": "1", "admission_source_id": "7",
                    "time_in_hospital": str(rng.randint(1, 14)), "num_lab_procedures": "40", "num_procedures": "1",
                    "num_medications": "12", "number_outpatient": "0", "number_emergency": "0",
                    "number_inpatient": str(rng.randint(0, 3)), "diag_1": "428", "diag_2": "250.01", "diag_3": "?",
                    "number_diagnoses": "7", "max_glu_serum": "None", "A1Cresult": ">8", "change": "Ch",
                    "diabetesMed": "Yes", "readmitted": "NO"})
        for m in MEDICATIONS:
            row[m] = "No"
        row["insulin"] = "Up"
        lines.append(",".join(row[c] for c in head))
    return ("\n".join(lines) + "\n").encode()


def _child(workload: str, store: Path, mig_store: Path, mig_key: bytes, work: Path, ackfile: Path, base: int) -> None:
    acks = Acks(ackfile)
    if workload == "migrate":
        db = Database(mig_store, mig_key)
        acks.write("ready")
        while current_version(db.conn) < LATEST:
            v = migrate(db.conn, current_version(db.conn) + 1)
            acks.write(f"ack migrate {v[-1]}")
        acks.write("done")
        return
    session = unlock(store, USER, PASSWORD)
    acks.write("ready")
    if workload == "edit":
        svc = PatientService(session)
        for n in range(base, base + 10_000):
            mrn = f"CR{n}"
            pid = svc.add_patient({"mrn": mrn, "family_name": f"Crash{n}", "given_name": "A", "sex": "Female", "birth_date": "1960-01-01"})
            acks.write(f"ack add {mrn} {pid}")
            svc.update_patient(pid, {"mrn": mrn, "family_name": f"Crash{n}", "given_name": "B", "sex": "Female",
                                     "birth_date": "1960-01-01"})
            acks.write(f"ack update {mrn} {pid}")
    elif workload == "import":
        for tag in range(base, base + 1000):
            data = _csv_for(tag)
            acks.write(f"begin import {tag}")
            import io
            import_uci_csv(session, io.BytesIO(data), name=f"crash-{tag}.csv")
            acks.write(f"ack import {tag}")
    elif workload == "backup":
        for n in range(base, base + 1000):
            dest = work / "backups" / f"b{n}.db"
            acks.write(f"begin backup {dest}")
            backup_mod.backup(session, dest)
            acks.write(f"ack backup {dest}")


# --- the parent's checks -------------------------------------------------------------------------

class Checker:
    def __init__(self) -> None:
        self.added: dict[str, bool] = {}        # mrn -> acknowledged update (given_name 'B')
        self.imports_begun: set[int] = set()
        self.imports_acked: set[int] = set()
        self.backups_begun: set[str] = set()
        self.backups_acked: set[str] = set()
        self.mig_acked = 0
        self.problems: list[str] = []

    def reset_main(self) -> None:
        self.added.clear()
        self.imports_begun.clear()
        self.imports_acked.clear()
        self.backups_begun.clear()
        self.backups_acked.clear()

    def read_acks(self, path: Path) -> tuple[int, bool]:
        n, ready = 0, False
        if not path.exists():
            return 0, False
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split(" ", 2)
            if parts[0] == "ready":
                ready = True
            elif parts[:2] == ["ack", "add"]:
                self.added.setdefault(parts[2].split()[0], False)
                n += 1
            elif parts[:2] == ["ack", "update"]:
                self.added[parts[2].split()[0]] = True
                n += 1
            elif parts[:2] == ["begin", "import"]:
                self.imports_begun.add(int(parts[2]))
            elif parts[:2] == ["ack", "import"]:
                self.imports_acked.add(int(parts[2]))
                n += 1
            elif parts[:2] == ["begin", "backup"]:
                self.backups_begun.add(parts[2])
            elif parts[:2] == ["ack", "backup"]:
                self.backups_acked.add(parts[2])
                n += 1
            elif parts[:2] == ["ack", "migrate"]:
                self.mig_acked = max(self.mig_acked, int(parts[2]))
                n += 1
        return n, ready

    def fail(self, kill: int, text: str) -> None:
        self.problems.append(f"kill {kill}: {text}")

    def check_main(self, kill: int, store: Path) -> None:
        try:
            KeyFile.load(key_file_path(store))
            session = unlock(store, USER, PASSWORD)  # the next start: opens with its key, migrates, logs in
        except Exception as exc:  # noqa: BLE001 - any failure to open after a kill is the finding
            self.fail(kill, f"store does not open: {exc.__class__.__name__}: {exc}")
            return
        try:
            c = session.db.conn
            report = verify_connection(c)
            for p in report.problems:
                self.fail(kill, f"verify: {p}")
            d = session.directory()   # names and numbers are sealed in the store
            found = {d.get(pid).mrn: (pid, d.get(pid).given) for pid in d.order() if d.get(pid).mrn.startswith("CR")}
            rows = {mrn: given for mrn, (_, given) in found.items()}
            for mrn, updated in self.added.items():
                if mrn not in rows:
                    self.fail(kill, f"acknowledged patient {mrn} is lost")
                elif updated and rows[mrn] != "B":
                    self.fail(kill, f"acknowledged update of {mrn} is lost")
            created = {int(e) for (e,) in c.execute(
                "SELECT entity_id FROM audit_log WHERE action = 'create' AND entity = 'patient'")}
            for mrn in rows:
                pid = found[mrn][0]
                if pid not in created:
                    self.fail(kill, f"patient {mrn} is stored without its audit row (half-applied)")
            for tag in self.imports_begun:
                got = c.execute("SELECT count(*) FROM encounters WHERE encounter_nbr BETWEEN ? AND ?",
                                (tag * TAG_SPAN + 1, tag * TAG_SPAN + TAG_SPAN - 1)).fetchone()[0]
                if got not in (0, IMPORT_ROWS):
                    self.fail(kill, f"import {tag} is half-applied: {got} of {IMPORT_ROWS} rows")
                if tag in self.imports_acked and got != IMPORT_ROWS:
                    self.fail(kill, f"acknowledged import {tag} is lost ({got} rows)")
            # the search table kept by triggers must equal what the diagnoses say (same transaction)
            drift = c.execute(PATIENT_CODES_DRIFT).fetchone()[0]
            if drift:
                self.fail(kill, f"patient_codes differs from the diagnoses in {drift} pairs")
            for dest in self.backups_begun:
                d = Path(dest)
                must = dest in self.backups_acked
                if d.exists() or must:
                    ok = backup_mod.check_backup(d, USER, PASSWORD) is not None
                    if not ok:
                        self.fail(kill, f"{'acknowledged' if must else 'unfinished'} backup {d.name} "
                                        f"{'is missing or' if must else 'exists under its final name but'} does not verify")
        finally:
            session.lock(reason="crash check")

    def check_migration(self, kill: int, path: Path, key: bytes, expected: dict[int, set]) -> int:
        if not path.exists() or path.stat().st_size == 0:
            # killed before SQLite wrote the first page of a brand-new file: version 0, nothing to lose
            if self.mig_acked:
                self.fail(kill, f"acknowledged migration to v{self.mig_acked} lost (the file is empty)")
            return 0
        try:
            db = Database.open_existing(path, key)
        except Exception as exc:  # noqa: BLE001
            self.fail(kill, f"migration store does not open: {exc.__class__.__name__}: {exc}")
            return -1
        try:
            c = db.conn
            for p in (r[0] for r in c.execute("PRAGMA cipher_integrity_check")):
                self.fail(kill, f"migration store encryption check: {p}")
            ic = [r[0] for r in c.execute("PRAGMA integrity_check")]
            if ic != ["ok"]:
                self.fail(kill, f"migration store integrity: {ic[:3]}")
            v = current_version(c)
            if v < self.mig_acked:
                self.fail(kill, f"acknowledged migration to v{self.mig_acked} lost (store at v{v})")
            have = set(c.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
            if have != expected.get(v, set()):
                self.fail(kill, f"migration store at v{v} has a schema of no single version (half-applied)")
            return v
        finally:
            db.close()


def _expected_schemas() -> dict[int, set]:
    out = {0: set()}
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for m in MIGRATIONS:
        for stmt in _statements(m.sql):
            conn.execute(stmt)
        out[m.version] = set(conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    conn.close()
    return out


# --- the loop ------------------------------------------------------------------------------------

def run(kills: int = 50, seed: int = 1, workdir: Path | None = None, max_delay_s: float = 0.25,
        log=print) -> dict:
    rng = random.Random(seed)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="wardlens-crash-")) if own else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    kdf = KdfParams.fast()
    master = work / "master" / "site.db"
    if not master.exists():
        master.parent.mkdir(parents=True, exist_ok=True)
        create_store(master, USER, PASSWORD, kdf)
    expected = _expected_schemas()
    chk = Checker()
    stats = {"kills": 0, "acked_commits": 0, "by_workload": {}, "exited_before_kill": 0}
    mig_key = os.urandom(32)
    store = mig = None
    t0 = time.perf_counter()
    try:
        for k in range(kills):
            if k % FRESH_EVERY == 0:
                run_dir = work / f"run{k // FRESH_EVERY}"
                shutil.rmtree(run_dir, ignore_errors=True)
                (run_dir / "backups").mkdir(parents=True)
                store = run_dir / "site.db"
                shutil.copyfile(master, store)
                shutil.copyfile(key_file_path(master), key_file_path(store))
                chk.reset_main()
                if k:
                    shutil.rmtree(work / f"run{k // FRESH_EVERY - 1}", ignore_errors=True)
            if mig is None or not mig.exists():
                mig = work / f"mig{k}.db"
                chk.mig_acked = 0
            workload = WORKLOADS[k % len(WORKLOADS)]
            ackfile = work / f"acks{k}.txt"
            ackfile.unlink(missing_ok=True)
            base = (k + 1) * 100_000 if workload != "import" else (k + 1) * 1000
            pid = os.fork()
            if pid == 0:  # child: never returns into the parent's code
                code = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    _child(workload, store, mig, mig_key, run_dir, ackfile, base)
                except BaseException:  # noqa: BLE001
                    import traceback
                    traceback.print_exc()
                    code = 1
                os._exit(code)
            # wait for "ready", then kill at a random moment
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if ackfile.exists() and b"ready" in ackfile.read_bytes()[:64]:
                    break
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.002)
            time.sleep(rng.uniform(0, max_delay_s))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                stats["exited_before_kill"] += 1
                if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
                    chk.fail(k, f"{workload} child failed on its own (exit {os.WEXITSTATUS(status)})")
            n, _ = chk.read_acks(ackfile)
            ackfile.unlink(missing_ok=True)
            stats["kills"] += 1
            stats["acked_commits"] += n
            stats["by_workload"][workload] = stats["by_workload"].get(workload, 0) + 1
            if workload == "migrate":
                v = chk.check_migration(k, mig, mig_key, expected)
                if v == LATEST or v < 0:
                    for suffix in ("", "-wal", "-shm"):
                        Path(str(mig) + suffix).unlink(missing_ok=True)
            else:
                chk.check_main(k, store)
            if (k + 1) % 50 == 0:
                log(f"{k + 1} kills, {stats['acked_commits']} acknowledged commits, {len(chk.problems)} problems, "
                    f"{time.perf_counter() - t0:.0f} s")
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    stats.update({"problems": chk.problems,
                  "losses": sum(p.split(": ", 1)[1].startswith("acknowledged") for p in chk.problems),
                  "seconds": round(time.perf_counter() - t0, 1), "seed": seed})
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-delay", type=float, default=0.25, help="longest wait before the kill, seconds")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args(argv)
    res = run(args.kills, args.seed, max_delay_s=args.max_delay)
    print(f"kills: {res['kills']}  acknowledged commits: {res['acked_commits']}  losses: {res['losses']}  "
          f"problems: {len(res['problems'])}  ({res['seconds']} s)  by workload: {res['by_workload']}")
    for p in res["problems"][:30]:
        print("  ", p)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
