"""The demo store: real UCI encounters (resources/demo/uci_sample.csv.gz) with generated names and
dates, five wards with beds, a realistic current census, and one published login per role.

The public data has no names or dates, so both are generated deterministically from the patient
number: the same sample always gives the same demo store (relative to today's date).
"""
from __future__ import annotations

import datetime as dt
import io
import os
import random
from pathlib import Path

import pandas as pd

from models.domain import Role
from services.core.files import check_new_store_path
from services.core.paths import RESOURCES
from services.site.accounts import AccountService, create_store, unlock
from services.core.errors import WardLensError
from services.records.importer import import_uci_csv
from services.store.keyfile import KdfParams, KeyFile, key_file_path
from services.core.progress import ProgressFn, no_progress
from services.site.session import Session

SAMPLE = RESOURCES / "demo" / "uci_sample.csv.gz"

DEMO_LOGINS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "wardlens-admin", Role.ADMIN, "Demo administrator"),
    ("dr.demo", "wardlens-clinician", Role.CLINICIAN, "Dr Demo"),
    ("nurse.demo", "wardlens-nurse", Role.NURSE, "Nurse Demo"),
    ("analyst.demo", "wardlens-analyst", Role.ANALYST, "Analyst Demo"),
)

# name, type, beds: (label prefix, count, isolation, sex bay)
WARDS: tuple[tuple[str, str, tuple[tuple[str, int, bool, str | None], ...]], ...] = (
    ("Medicine A", "medical", (("A1-", 6, False, "Female"), ("A2-", 6, False, "Male"), ("A3-", 6, False, "Female"),
                               ("A4-", 6, False, "Male"), ("AS-", 4, True, None))),
    ("Medicine B", "medical", (("B1-", 6, False, "Female"), ("B2-", 6, False, "Male"), ("B3-", 6, False, None),
                               ("B4-", 6, False, None), ("BS-", 4, True, None))),
    ("Surgery", "surgical", (("S1-", 6, False, "Female"), ("S2-", 6, False, "Male"), ("S3-", 8, False, None),
                             ("SS-", 4, True, None))),
    ("Cardiology", "cardiology", (("C1-", 8, False, None), ("C2-", 8, False, None), ("CS-", 4, True, None))),
    ("ICU", "icu", (("ICU-", 10, True, None),)),
)

GIVEN_F = ("Mary", "Linda", "Susan", "Karen", "Nancy", "Helen", "Ruth", "Sharon", "Carol", "Donna", "Joan", "Alice",
           "Grace", "Maria", "Rosa", "Aisha", "Mei", "Priya", "Fatima", "Ingrid", "Olga", "Chloe", "Emma", "Sofia")
GIVEN_M = ("James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles", "George",
           "Frank", "Henry", "Carlos", "Luis", "Ahmed", "Wei", "Raj", "Omar", "Lars", "Ivan", "Noah", "Liam", "Hugo")
FAMILY = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
          "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson",
          "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green",
          "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans", "Turner",
          "Okafor", "Nguyen", "Patel", "Kowalski", "Novak", "Schmidt", "Rossi", "Haddad", "Tanaka", "Kim", "Singh")

CENSUS_TARGET = 0.85      # share of beds occupied today
HISTORY_DAYS = 150        # discharges of the sample spread over this many days before today


def ward_for(specialty: str, admission_type: int, rng: random.Random) -> str:
    s = specialty.lower()
    if "cardio" in s:
        return "Cardiology"
    if s.startswith("surgery") or "orthop" in s or "urolog" in s or "otolaryng" in s:
        return "Surgery"
    if admission_type == 1 and rng.random() < 0.06:
        return "ICU"
    return "Medicine A" if rng.random() < 0.5 else "Medicine B"


def _names(patient_nbr: int, gender: str) -> tuple[str, str]:
    r = random.Random(patient_nbr * 7919)
    given = r.choice(GIVEN_F if gender == "Female" else GIVEN_M if gender == "Male" else GIVEN_F + GIVEN_M)
    return given, r.choice(FAMILY)


def _birth_date(patient_nbr: int, age_band: str, at: dt.date) -> str:
    r = random.Random(patient_nbr * 104729)
    low = int(age_band.strip("[)").split("-")[0]) if age_band else 50
    years = low + r.randint(0, 9)
    return (at - dt.timedelta(days=int(years * 365.25) + r.randint(0, 364))).isoformat()


def demo_frame(sample: Path = SAMPLE, today: dt.date | None = None, seed: int = 2026) -> pd.DataFrame:
    """The sample with names, birth dates, admission/discharge times and wards added."""
    today = today or dt.date.today()
    # an inpatient admitted "today" must not show an admission later than the clock on the wall
    now = dt.datetime.now() if today == dt.date.today() else dt.datetime.combine(today, dt.time(23, 59))
    latest_admit = max(dt.datetime.combine(today, dt.time(0, 0)), now - dt.timedelta(hours=1)).replace(second=0,
                                                                                                       microsecond=0)
    df = pd.read_csv(sample, dtype=str, keep_default_na=False)
    df["_eid"] = df["encounter_id"].astype(int)
    df = df.sort_values(["patient_nbr", "_eid"]).reset_index(drop=True)
    rng = random.Random(seed)
    total_beds = sum(n for _, _, bays in WARDS for _, n, _, _ in bays)
    patients = list(dict.fromkeys(df["patient_nbr"]))
    census = set(rng.sample(patients, int(total_beds * CENSUS_TARGET)))
    admits, discharges, wards = [None] * len(df), [None] * len(df), [""] * len(df)
    for nbr, idx in df.groupby("patient_nbr", sort=False).groups.items():
        rows = list(idx)
        last = rows[-1]
        los = int(df.at[last, "time_in_hospital"])
        if nbr in census:
            admit = today - dt.timedelta(days=rng.randint(0, max(0, los - 1)))
            discharge = None
        else:
            discharge = today - dt.timedelta(days=rng.randint(1, HISTORY_DAYS))
            admit = discharge - dt.timedelta(days=los)
        for pos in reversed(rows):
            if pos != last:  # walk back: the gap before the next admission agrees with this stay's label
                label = df.at[pos, "readmitted"]
                gap = rng.randint(2, 29) if label == "<30" else rng.randint(31, 240)
                discharge = admit - dt.timedelta(days=gap)
                admit = discharge - dt.timedelta(days=int(df.at[pos, "time_in_hospital"]))
            hour = rng.randint(7, 22)
            admits[pos] = min(dt.datetime.combine(admit, dt.time(hour, rng.choice((0, 15, 30, 45)))), latest_admit)
            discharges[pos] = (dt.datetime.combine(discharge, dt.time(rng.randint(10, 17), 0))
                               if discharge is not None else None)
            wards[pos] = ward_for(df.at[pos, "medical_specialty"], int(df.at[pos, "admission_type_id"]), rng)
    df["admit_time"] = [a.isoformat(sep=" ", timespec="minutes") for a in admits]
    df["discharge_time"] = [d.isoformat(sep=" ", timespec="minutes") if d else "" for d in discharges]
    df["ward"] = wards
    # The 30-day outcome is not known yet for stays that ended less than 30 days ago, nor for inpatients.
    recent = [d is None or (today - d.date()).days < 30 for d in discharges]
    df.loc[recent, "readmitted"] = ""
    names = [_names(int(n), g) for n, g in zip(df["patient_nbr"], df["gender"])]
    df["given_name"] = [g for g, _ in names]
    df["family_name"] = [f for _, f in names]
    last_band = df.groupby("patient_nbr")["age"].transform("last")
    df["birth_date"] = [_birth_date(int(n), b, today) for n, b in zip(df["patient_nbr"], last_band)]
    return df.drop(columns=["_eid"])


def _create_wards(session: Session) -> None:
    with session.db.transaction() as c:
        for name, ward_type, bays in WARDS:
            cap = sum(n for _, n, _, _ in bays)
            wid = c.execute("INSERT INTO wards (name, ward_type, capacity) VALUES (?,?,?)", (name, ward_type, cap)).lastrowid
            for prefix, n, isolation, sex in bays:
                c.executemany("INSERT INTO beds (ward_id, label, isolation, sex_bay) VALUES (?,?,?,?)",
                              [(wid, f"{prefix}{i + 1}", int(isolation), sex) for i in range(n)])


def _assign_beds(session: Session) -> int:
    """Put each inpatient in a free bed of their ward that fits their sex; those who do not fit are
    recorded as discharged yesterday, as a full ward would have moved them on."""
    placed = 0
    with session.db.transaction() as c:
        inpatients = c.execute("SELECT e.id, e.ward_id, p.sex FROM encounters e JOIN patients p ON p.id = e.patient_id "
                               "WHERE e.status = 'inpatient' ORDER BY e.admit_time").fetchall()
        free: dict[int, list[tuple[int, bool, str | None]]] = {}
        for bid, wid, iso, sex_bay in c.execute("SELECT id, ward_id, isolation, sex_bay FROM beds ORDER BY id"):
            free.setdefault(wid, []).append((bid, bool(iso), sex_bay))
        icu = c.execute("SELECT id FROM wards WHERE ward_type = 'icu'").fetchone()
        icu = icu[0] if icu else None
        yesterday = (dt.datetime.now() - dt.timedelta(days=1)).replace(hour=11, minute=0, second=0, microsecond=0)
        for eid, wid, sex in inpatients:
            # Own ward first, then board on another general ward (ICU beds are never used for boarders).
            choice = None
            for w in [wid] + [w for w in free if w != wid and w != icu]:
                beds = free.get(w, [])
                # A bay matching the patient's sex, then a mixed bay, then an isolation room.
                choice = next((b for b in beds if b[2] == sex), None) or \
                    next((b for b in beds if b[2] is None and not b[1]), None) or next((b for b in beds if b[2] is None), None)
                if choice is not None:
                    break
            if choice is None:
                c.execute("UPDATE encounters SET status = 'discharged', discharge_time = max(admit_time, ?), "
                          "time_in_hospital = max(1, CAST(julianday(date(?)) - julianday(date(admit_time)) AS INTEGER)) WHERE id = ?",
                          (yesterday.isoformat(sep=" ", timespec="minutes"),) * 2 + (eid,))
                continue
            beds.remove(choice)
            c.execute("UPDATE encounters SET bed_id = ?, ward_id = ?, time_in_hospital = NULL WHERE id = ?",
                      (choice[0], w, eid))
            placed += 1
    return placed


WAITING = (("medical", False), ("medical", False), ("surgical", False), ("cardiology", False), ("medical", True),
           ("icu", True), ("surgical", False))


def _add_waiting(session: Session, today: dt.date) -> None:
    """A few patients from the emergency department waiting for a bed, so the bed view has work to do."""
    with session.db.transaction() as c:
        pids = [r[0] for r in c.execute("SELECT id FROM patients WHERE id NOT IN (SELECT patient_id FROM encounters "
                                        "WHERE status = 'inpatient') ORDER BY id LIMIT ?", (len(WAITING),))]
        for k, (pid, (ward_type, iso)) in enumerate(zip(pids, WAITING)):
            at = dt.datetime.combine(today, dt.time(6 + k, 10 * k % 60)).isoformat(sep=" ", timespec="minutes")
            c.execute("INSERT INTO waiting_admissions (patient_id, requested_at, ward_type, needs_isolation, note) "
                      "VALUES (?,?,?,?,?)", (pid, at, ward_type, int(iso), session.codec.text_in(
                          "waiting_admissions", "note", pid, "isolation: suspected infection" if iso else "")))


def build_demo_store(path: Path | str, kdf: KdfParams | None = None, progress: ProgressFn = no_progress,
                     today: dt.date | None = None) -> Path:
    """Build the demo store beside `path` and move it into place only when complete, so an interrupted
    first start (the window closed, the machine off) never leaves a half-built store behind."""
    path = check_new_store_path(path)
    if path.exists() or key_file_path(path).exists():
        raise WardLensError(f"{path} already exists; WardLens will not overwrite a store.")
    work = path.with_name(path.name + ".building")
    for leftover in (work, key_file_path(work), Path(str(work) + "-wal"), Path(str(work) + "-shm")):
        leftover.unlink(missing_ok=True)
    kdf = kdf or KdfParams.calibrated()
    admin_user, admin_pw, _, admin_name = DEMO_LOGINS[0]
    progress(0, 5, "Creating the encrypted store")
    create_store(work, admin_user, admin_pw, kdf, admin_name)
    session = unlock(work, admin_user, admin_pw)
    try:
        accounts = AccountService(session, kdf)
        for i, (user, pw, role, name) in enumerate(DEMO_LOGINS[1:], start=1):
            progress(i, 5, f"Adding the demo {role.value}")
            accounts.add_user(user, pw, role, name)
        _create_wards(session)
        progress(4, 5, "Importing the demo patients")
        frame = demo_frame(today=today)
        buf = io.BytesIO(frame.to_csv(index=False).encode("utf-8"))
        report = import_uci_csv(session, buf, name="demo sample (UCI Diabetes 130-US, CC BY 4.0)")
        if report.rejected_total:
            raise RuntimeError(f"demo sample rows rejected: {report.rejected[:3]}")
        _assign_beds(session)
        _add_waiting(session, today or dt.date.today())
        session.log("demo_built", "store", "", report.summary())
        session.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        session.lock(reason="demo built")
    keys = KeyFile.load(key_file_path(work))
    keys.set_demo_logins([{"username": u, "password": p, "role": r.value} for u, p, r, _ in DEMO_LOGINS])
    keys.save()
    for suffix in ("-wal", "-shm"):  # empty after the checkpoint and close; the store is one file now
        Path(str(work) + suffix).unlink(missing_ok=True)
    os.replace(key_file_path(work), key_file_path(path))
    os.replace(work, path)
    progress(5, 5, "Demo store ready")
    return path
