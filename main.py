"""WardLens: composition root. Parses the command line; with no sub-command it opens the GUI."""
from __future__ import annotations

import argparse
import getpass
import os
import json
import sys
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before anything imports onnxruntime
os.umask(0o077)  # every file this process creates (store, -wal/-shm, copies, outputs) is readable by its owner only

from services.core.hardening import disable_core_dumps, take_secret_from_environment  # noqa: E402

disable_core_dumps()  # before any key or patient data is in memory
_ENV_PASSWORD = take_secret_from_environment("WARDLENS_PASSWORD")  # wiped from /proc/PID/environ at once
_ENV_RECOVERY = take_secret_from_environment("WARDLENS_RECOVERY_KEY")
_ENV_NEW_PASSWORD = take_secret_from_environment("WARDLENS_NEW_PASSWORD")
_ENV_PGPASSWORD = take_secret_from_environment("PGPASSWORD")   # the DBA's set-up login (init, migrate-store) only

from services.core.errors import PasswordChangeRequired, WardLensError  # noqa: E402
from services.core.files import check_command_paths  # noqa: E402
from services.core.outputs import write_output  # noqa: E402
from services.core.paths import default_store_path, ensure_user_data_dir, user_data_dir  # noqa: E402


def _store_arg(text: str) -> Path | str:
    """--db: a desk store file, or a server store's postgresql:// URL (kept as text: a Path would fold its '//')."""
    from services.store.dialect import is_server_url
    return text.strip() if is_server_url(text) else Path(text)


def _desk_store_only(args: argparse.Namespace, what: str) -> None:
    if isinstance(args.db, str):
        raise WardLensError(f"{what} is for a desk store file. On a server store the hospital's DBA keeps backups and "
                            "keys (pg_dump, the server's disk encryption; docs/security.md).")


def _secret(env: str | None, prompt: str, why: str, repeat: bool = False) -> str:
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise WardLensError(why)
    value = getpass.getpass(prompt)
    if repeat and getpass.getpass("Repeat it: ") != value:
        raise WardLensError("The two passwords differ.")
    return value


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    """User from --user or WARDLENS_USER; password from WARDLENS_PASSWORD or a prompt, never an argument."""
    user = args.user or os.environ.get("WARDLENS_USER") or ""
    password = _ENV_PASSWORD
    if not user:
        if not sys.stdin.isatty():
            raise WardLensError("Give the user with --user or WARDLENS_USER.")
        user = input("User: ").strip()
    if password is None:
        if not sys.stdin.isatty():
            raise WardLensError("Set WARDLENS_PASSWORD or run from a terminal to be asked for the password.")
        password = getpass.getpass(f"Password for {user}: ")
    return user, password


def _desk(args: argparse.Namespace):
    """The session every command works in, opened exactly as the GUI opens it (services.desk)."""
    from services.desk import open_desk, open_desk_with_recovery
    if isinstance(args.db, str):
        from services.store.server import ServerAddress
        ServerAddress.parse(args.db)   # a URL WardLens would not use is refused before any password is asked
    recovery = _ENV_RECOVERY
    if recovery and not args.user and not os.environ.get("WARDLENS_USER"):
        _desk_store_only(args, "The recovery key")
        desk = open_desk_with_recovery(args.db, recovery)
    else:
        try:
            desk = open_desk(args.db, *_credentials(args))
        except PasswordChangeRequired as exc:
            raise WardLensError(f"{exc} On the command line: main.py users passwd --db {args.db}") from None
    for warning in desk.warnings:   # e.g. a promoted model refused at its check, an audit log shorter than seen
        print(f"warning: {warning}", file=sys.stderr)
    return desk


def cmd_demo(args: argparse.Namespace) -> int:
    _desk_store_only(args, "The demo store")
    from services.records.demo import DEMO_LOGINS, build_demo_store
    build_demo_store(args.db, progress=lambda d, t, m="": print(f"[{d}/{t}] {m}", file=sys.stderr))
    print(f"Demo store written to {args.db}")
    for user, pw, role, _ in DEMO_LOGINS:
        print(f"  {role.value:<10} {user:<14} {pw}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from services.site.accounts import create_store
    address = None
    if isinstance(args.db, str):
        from services.store.server import ServerAddress
        address = ServerAddress.parse(args.db)   # an address WardLens would not use: refused before any password
    password = _secret(_ENV_PASSWORD, f"New password for {args.admin}: ",
                       "Set WARDLENS_PASSWORD or run from a terminal to be asked for the admin password.", repeat=True)
    if address is not None:
        from services.site.server_setup import init_server
        dba = _secret(_ENV_PGPASSWORD, f"Password of the set-up login {address.user} on the server: ",
                      "Set PGPASSWORD (the set-up login's) or run from a terminal to be asked for it.")
        print(init_server(address, dba, args.admin, password))
        print(f"Desks connect with --db {address.with_user('').url} and each person's own user name and password.")
        return 0
    created = create_store(args.db, args.admin, password)
    print(f"New empty store at {created.path} with administrator {args.admin}.")
    print("RECOVERY KEY (shown once; print it and keep it in the safe):")
    print(f"  {created.recovery_key}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Exit 0 when every record was imported, updated or unchanged; 3 when some were rejected (listed)."""
    desk = _desk(args)
    try:
        report = desk.records.import_files(
            args.input, args.format,
            progress=lambda d, t, m="": print(f"\r{100 * d // max(t, 1):3d}% {m}", end="", file=sys.stderr),
            mapping=args.mapping)
    finally:
        desk.lock(reason="command finished")
    print(file=sys.stderr)
    print(report.summary())
    for line in report.lines():
        print(f"  {line}")
    for r in report.rejected:
        print(f"  rejected: {r.file} {r.where}: {r.reason}")
    if report.rejected_total > len(report.rejected):
        print(f"  … and {report.rejected_total - len(report.rejected)} more")
    return 0 if report.rejected_total == 0 else 3


def cmd_watch(args: argparse.Namespace) -> int:
    """The watched import folder from a scheduled task or a service: one pass (--once) or a pass every --interval
    seconds until stopped. Exit 3 when a file of the (last) pass went to failed/."""
    import time
    desk = _desk(args)
    try:
        folder = args.folder or desk.site.settings.get("import_folder")
        if not folder:
            raise WardLensError("No import folder: give --folder or set it with config --set import_folder=/path.")
        while True:
            results = desk.records.import_watched_folder(folder)
            for r in results:
                print(f"{'done  ' if r.ok else 'FAILED'} {r.name}: {r.summary} -> {r.moved_to}")
            if args.once:
                return 0 if all(r.ok for r in results) else 3
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        desk.lock(reason="command finished")


def cmd_backups(args: argparse.Namespace) -> int:
    _desk_store_only(args, "Backups")
    desk = _desk(args)
    try:
        entries = desk.site.backups()
    finally:
        desk.lock(reason="command finished")
    rows = [{"path": str(e.path), "date": e.day.isoformat(), "size": e.size, "verified_when_made": e.verified,
             "audit_rows": e.audit_rows, "kept_for": e.kept_for} for e in entries]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['date']}  {r['size'] / 2**20:8.1f} MB  {'verified' if r['verified_when_made'] else 'not recorded':12}"
                  f"  {r['kept_for'] or '-':8}  {r['path']}")
        print(f"{len(rows)} backups")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    _desk_store_only(args, "A backup")
    if args.daily == (args.output is not None):
        print("error: give --output FILE, or --daily for the day's backup into the site's backup folder",
              file=sys.stderr)
        return 2
    desk = _desk(args)
    try:
        if args.daily:
            daily = desk.site.daily_backup()
            print(f"Daily backup {'written and verified: ' + str(daily.made) if daily.made else 'already made today'}"
                  f" ({daily.folder}); {len(daily.removed)} old backups removed by retention")
            return 0
        report = desk.site.backup(args.output)
    finally:
        desk.lock(reason="command finished")
    print(f"Backup written and verified: {args.output} (+ {Path(str(args.output) + '.keys').name}), "
          f"{report.audit_rows} audit rows")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    _desk_store_only(args, "A restore")
    from services.site.backup import restore
    user, password = _credentials(args)
    confirm = None
    if args.confirm_admin:
        if not sys.stdin.isatty():
            raise WardLensError("--confirm-admin asks for that administrator's password at the terminal.")
        confirm = (args.confirm_admin, getpass.getpass(f"Password of {args.confirm_admin}, administrator of {args.db}: "))
    kept = restore(args.backup, args.db, user, password, confirm)
    print(f"Restored {args.db} from {args.backup}; the previous store was kept as {kept}")
    return 0


def _new_password(prompt: str) -> str:
    """A new password from WARDLENS_NEW_PASSWORD or typed twice at the terminal."""
    if _ENV_NEW_PASSWORD is not None:
        return _ENV_NEW_PASSWORD
    if not sys.stdin.isatty():
        raise WardLensError("Set WARDLENS_NEW_PASSWORD or run from a terminal to be asked for the new password.")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass("Repeat it: ") != first:
        raise WardLensError("The two passwords differ.")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    """People: list, add, set-role, deactivate, reactivate, reset-password, unlock (administrators), passwd (anyone)."""
    from models.domain import Role
    from services.desk import open_desk
    from services.site.accounts import new_one_time_password as _one_time_password
    if args.action == "passwd":
        user, password = _credentials(args)
        open_desk(args.db, user, password, new_password=_new_password(f"New password for {user}")).lock()
        print(f"Password of {user} changed.")
        return 0
    desk = _desk(args)
    try:
        accounts, name = desk.site.accounts, getattr(args, "name", "").strip().lower()
        one_time = None
        if args.action == "list":
            people = accounts.people()
            if args.json:
                print(json.dumps(people, indent=1))
            for p in [] if args.json else people:
                flags = [f for f, on in (("inactive", not p["active"]), ("must change password", p["must_change_password"]),
                                         (f"{p['failed_logins']} failed logins", p["failed_logins"]),
                                         ("NOT SIGNED", not p["signed"])) if on]
                print(f"{p['username']:<16} {p['role']:<10} {p['display_name']:<24} {', '.join(flags)}")
        elif args.action == "add":
            one_time = _one_time_password()
            accounts.add_user(name, one_time, Role(args.role), args.display_name or "", must_change=True)
        elif args.action == "set-role":
            role = Role(args.role)
            one_time = _one_time_password() if role is Role.ADMIN else None
            if not accounts.set_role(name, role, one_time):
                one_time = None
                print(f"{name} is already {role.value}.")
        elif args.action == "deactivate":
            accounts.deactivate_user(name)
        elif args.action in ("reactivate", "reset-password"):
            one_time = _one_time_password()
            (accounts.reactivate_user if args.action == "reactivate" else accounts.reset_password)(name, one_time)
        elif args.action == "unlock":
            accounts.unlock_account(name)
        elif args.action == "countersign":
            print(f"{name}'s signing key {accounts.countersign(name)} is countersigned.")
        elif args.action == "recovery-key":
            key = accounts.regenerate_recovery_key()
            print(f"New recovery key (the old one no longer works; it is shown only now):\n\n    {key}\n\nWrite it on "
                  "paper and keep it in the site's safe.")
    finally:
        desk.lock(reason="command finished")
    if args.action not in ("list", "recovery-key"):
        print(f"{args.action}: {name} done.")
    if one_time:
        print(f"One-time password for {name}: {one_time}\n(they choose their own at their first login; it is shown "
              "only now)")
    return 0


def cmd_upgrade_store(args: argparse.Namespace) -> int:
    """The DBA's step after installing a WardLens that changes the server store's schema."""
    from services.site.server_setup import upgrade_server
    from services.store.server import ServerAddress
    if not isinstance(args.db, str):
        raise WardLensError("upgrade-store is for a server store (a desk store upgrades itself when it opens).")
    address = ServerAddress.parse(args.db)
    dba = _secret(_ENV_PGPASSWORD, f"Password of the set-up login {address.user} on the server: ",
                  "Set PGPASSWORD (the set-up login's) or run from a terminal to be asked for it.")
    done = upgrade_server(address, dba)
    print(f"Applied schema versions {', '.join(map(str, done))}." if done else "The server store is up to date.")
    return 0


def cmd_migrate_store(args: argparse.Namespace) -> int:
    """Exit 0 when both sides agree, 4 when the copy landed but a check found a difference (listed)."""
    from services.site.accounts import unlock
    from services.site.server_migrate import migrate_store
    from services.store.dialect import is_server_url
    if not is_server_url(args.to):
        raise WardLensError("--to is the server store's postgresql://dba@host/database?sslmode=verify-full&… URL.")
    user, password = _credentials(args)
    session = unlock(args.source, user, password)
    try:
        dba = _secret(_ENV_PGPASSWORD, "Password of the set-up login on the server: ",
                      "Set PGPASSWORD (the set-up login's) or run from a terminal to be asked for it.")
        report = migrate_store(session, args.to, dba, password,
                               progress=lambda d, t, m="": print(f"[{d}/{t}] {m}", file=sys.stderr))
    finally:
        session.lock(reason="command finished")
    for table, n in report.counts.items():
        print(f"  {table:<20} {n}")
    print(f"  audit chain head     {report.audit_head}")
    for name, one_time in report.one_time_passwords.items():
        print(f"One-time password for {name}: {one_time}")
    if report.one_time_passwords:
        print("(each person chooses their own at their first login on the server; shown only now)")
    if not report.ok:
        print("DIFFERENCES FOUND:")
        for p in report.problems:
            print(f"  - {p}")
        return 4
    print(f"Moved: both sides agree. {user} logs in to the server with the same password.")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    desk = _desk(args)
    try:
        stats = desk.stats()
    finally:
        desk.lock(reason="command finished")
    if args.json:
        print(json.dumps(stats))
    else:
        for key, value in stats.items():
            print(f"{key:<20} {value}")
    return 0


def cmd_census(args: argparse.Namespace) -> int:
    desk = _desk(args)
    try:
        rows = [r for r in desk.census_rows() if not args.ward or r["ward"].lower() == args.ward.strip().lower()]
    finally:
        desk.lock(reason="command finished")
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['ward']:<14} {r['bed']:<6} {r['patient_number']:<12} {r['name']:<28} admitted {r['admitted']}, "
                  f"expected home {r['expected_discharge'] or 'beyond model range'}")
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    _desk_store_only(args, "Key rotation")
    from services.site.rotation import rotate_data_key
    desk = _desk(args)
    try:
        result = rotate_data_key(desk.session, force=args.force)
    finally:
        desk.lock(reason="command finished")
    print(f"Keys rotated (epoch {result.epoch}): no earlier key file or password opens {args.db} now.")
    print(f"  new key sealed for: {', '.join(result.granted) or 'nobody else'} (taken at their next login)")
    if result.removed:
        print(f"  entries removed: {', '.join(result.removed)}")
    if result.without_grant:
        print(f"  WITHOUT ACCESS until given a new password: {', '.join(result.without_grant)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    desk = _desk(args)
    try:
        report = desk.site.verify()   # administrators only, audited: the same rule as the GUI's
    finally:
        desk.lock(reason="command finished")
    if report.ok and report.server:
        print(f"OK: the server's guards in place (audit log append-only, no login acting as the owner), schema "
              f"v{report.schema_version}, audit chain of {report.audit_rows} rows intact")
    elif report.ok:
        print(f"OK: encryption and structure checks clean, schema v{report.schema_version}, "
              f"audit chain of {report.audit_rows} rows intact, signatures and anchors verified")
    else:
        print("PROBLEMS FOUND:")
        for p in report.problems:
            print(f"  - {p}")
    for n in report.notes:
        print(f"  note: {n}")
    return 0 if report.ok else 4


def _print_counts(result: dict, errors_key: str = "errors") -> None:
    for e in result.get(errors_key, [])[:200]:
        if isinstance(e, dict):
            print(f"  line {e.get('line', '?')}: {e.get('reason', e)}", file=sys.stderr)
        else:
            print(f"  {e}", file=sys.stderr)


def cmd_score(args: argparse.Namespace) -> int:
    """No store, no login: a UCI encounter CSV, or FHIR R4 / HL7 v2 records (told apart by content), in; scores out."""
    inputs = list(args.input)
    check_command_paths(args.output, tuple(inputs), input_files_only=False)
    fmt = args.format
    if fmt is None:
        from services.records.sources import detect
        fmt = detect(inputs)[0]
    if fmt != "uci-csv":
        from services.desk.scoring import score_records
        result = score_records(args.model, inputs, args.output, fmt)
        print(f"{result['scored']} scored, {result['not_eligible']} not eligible, {len(result['errors'])} rejected "
              f"-> {args.output}")
        for line in result["import"]:
            print(f"  {line}")
        for e in result["errors"]:
            print(f"  rejected: {e}")
        return 0 if not result["errors"] else 3
    if inputs[0].is_dir():
        raise WardLensError(f"{inputs[0]} is a folder; give the CSV file to read (folders are read for FHIR and HL7 "
                            "records only).")
    if len(inputs) != 1:
        raise WardLensError("Give one UCI encounter CSV file to score.")
    if args.model == "readmission":
        from services.risk.readmission import score_readmission_csv
        result = score_readmission_csv(inputs[0], args.output)
        print(f"{result['scored']} scored, {result['not_eligible']} not eligible (death, hospice, acute transfer), "
              f"{len(result['errors'])} rejected -> {args.output}")
    else:
        from services.capacity.los import score_los_csv
        result = score_los_csv(inputs[0], args.output)
        print(f"{result['scored']} scored, {result['rejected']} rejected -> {args.output}")
    _print_counts(result)
    return 0 if not result["errors"] else 3


def cmd_xray(args: argparse.Namespace) -> int:
    from services.imaging.xray import classify_paths
    check_command_paths(args.output, tuple(args.input), input_files_only=False)
    result = classify_paths([str(p) for p in args.input], str(args.output))
    print(f"{result['classified']} of {result['images']} images classified, {result['ood']} refused as not chest "
          f"radiographs, {result['errors']} unreadable -> {args.output}")
    return 0 if result["images"] and not result["errors"] else 3


def cmd_config(args: argparse.Namespace) -> int:
    desk = _desk(args)
    try:
        svc = desk.site.settings
        if args.set:
            key, _, value = args.set.partition("=")
            if key.strip() == "hospital_logo" and value.strip().startswith("@"):
                from services.site.settings import logo_text_from_file
                value = logo_text_from_file(value.strip()[1:])
            svc.set(key.strip(), value.strip())
        for key in svc.all():
            print(f"{key} = {svc.shown(key)}    # {svc.describe(key)}")
    finally:
        desk.lock(reason="command finished")
    return 0


def cmd_wards(args: argparse.Namespace) -> int:
    """Wards and beds: list (anyone who sees the census), add, rename, set-beds, bed-out, bed-in (administrators)."""
    desk = _desk(args)
    try:
        wards = desk.capacity.wards
        if args.action == "add":
            wards.add_ward(args.name, args.type, args.beds, args.prefix or "")
        elif args.action == "rename":
            wards.rename_ward(wards.find(args.name).id, args.new_name)
        elif args.action == "set-beds":
            wards.set_beds(wards.find(args.name).id, args.beds)
        elif args.action in ("bed-out", "bed-in"):
            ward = wards.find(args.name)
            bed = next((b for b in ward.beds if b.label.lower() == args.bed.strip().lower()), None)
            if bed is None:
                raise WardLensError(f"{ward.name} has no bed {args.bed!r}.")
            wards.set_out_of_service(bed.id, args.reason if args.action == "bed-out" else None)
        listed = wards.list()
    finally:
        desk.lock(reason="command finished")
    if getattr(args, "json", False):
        print(json.dumps([{"ward": w.name, "type": w.ward_type, "beds": len(w.beds), "in_service": w.in_service,
                           "occupied": w.occupied,
                           "out_of_service": [{"bed": b.label, "reason": b.out_of_service} for b in w.beds
                                              if b.out_of_service is not None]} for w in listed], indent=1))
        return 0
    for w in listed:
        closed = [f"{b.label} ({b.out_of_service})" for b in w.beds if b.out_of_service is not None]
        print(f"{w.name:<16} {w.ward_type:<11} {w.in_service:>3} beds in service, {w.occupied:>3} occupied"
              + (f"; out of service: {', '.join(closed)}" if closed else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    check_command_paths(args.output, kind="pdf")  # before the login and the work, not after
    if args.kind == "patient" and not args.patient:
        raise WardLensError("Give the patient with --patient (the patient number).")
    desk = _desk(args)
    try:
        if args.kind == "patient":
            pdf = desk.reports.patient_pdf(desk.records.patient_id_for(args.patient), args.encounter)
        else:
            pdf = desk.reports.ward_pdf(args.ward)
    finally:
        desk.lock(reason="command finished")
    write_output(args.output, "pdf", pdf)
    print(f"{args.kind.capitalize()} report written to {args.output} ({len(pdf) // 1024} KB)")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from ui.app import run_gui
    if args.smoke_seconds:
        _quit_after(args.smoke_seconds)
    if args.db is None and default_store_path().parent == user_data_dir():
        ensure_user_data_dir()   # the per-user store's own folder; a site's or a person's path must already exist
    return run_gui(args.db if args.db else default_store_path(), sys.argv[:1])


def _quit_after(seconds: float) -> None:
    """Hidden `gui --smoke-seconds N` (packaging smoke test, installer/smoke_test.py): quit the event loop after N s."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(int(seconds * 1000), app.quit)


def build_parser() -> argparse.ArgumentParser:
    from services.core.about import version_line
    ap = argparse.ArgumentParser(prog="wardlens", description="WardLens offline clinical risk desk")
    ap.add_argument("--version", action="version", version=version_line())
    sub = ap.add_subparsers(dest="command")

    def with_db(p: argparse.ArgumentParser, login: bool = True) -> argparse.ArgumentParser:
        p.add_argument("--db", type=_store_arg, required=True,
                       help="the store file, or a server store's postgresql://host/db?sslmode=verify-full&sslrootcert=… "
                            "URL")
        if login:
            p.add_argument("--user", help="user name (or WARDLENS_USER); the password comes from WARDLENS_PASSWORD "
                                          "or a prompt; WARDLENS_RECOVERY_KEY alone opens with the recovery key")
        return p

    g = sub.add_parser("gui", help="open the application (the default)")
    g.add_argument("--db", type=_store_arg, help=f"store file (default {default_store_path()}), or a server store's "
                                                 "postgresql:// URL")
    g.add_argument("--smoke-seconds", type=float, default=0, help=argparse.SUPPRESS)  # installer/smoke_test.py
    g.set_defaults(func=cmd_gui)
    with_db(sub.add_parser("demo", help="build the demo store"), login=False).set_defaults(func=cmd_demo)
    p = with_db(sub.add_parser("init", help="create a new empty store and its administrator"), login=False)
    p.add_argument("--admin", default="admin", help="administrator user name")
    p.set_defaults(func=cmd_init)
    p = with_db(sub.add_parser("import", help="import records: UCI encounter CSV, FHIR R4 (Bundles, Bulk Data NDJSON, "
                                              "a folder, .gz) or HL7 v2 ADT messages, told apart by their content"))
    p.add_argument("--input", type=Path, required=True, nargs="+", help="files or folders")
    p.add_argument("--format", choices=("uci-csv", "fhir", "hl7v2"), help="force a format instead of detecting it")
    p.add_argument("--mapping", type=Path, help="a saved column mapping (JSON) for a CSV export in the hospital's own "
                   "columns, e.g. resources/mappings/synthea-csv.json; --input is then the export's folder or CSV")
    p.set_defaults(func=cmd_import)
    p = with_db(sub.add_parser("watch", help="import the files dropped into the watched import folder, then move "
                                             "them to done/ or failed/ (with a reason file)"))
    p.add_argument("--folder", type=Path, help="the folder (default: the import_folder setting)")
    p.add_argument("--once", action="store_true", help="one pass, then exit (for a scheduled task)")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between passes (default 30)")
    p.set_defaults(func=cmd_watch)
    p = with_db(sub.add_parser("backup", help="write a verified encrypted backup"))
    p.add_argument("--output", type=Path)
    p.add_argument("--daily", action="store_true", help="the day's backup into the site's backup folder, with "
                   "retention (what the application does at the first unlock of the day; for a scheduled task)")
    p.set_defaults(func=cmd_backup)
    p = with_db(sub.add_parser("backups", help="list the backups in the site's backup folder"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backups)
    p = with_db(sub.add_parser("restore", help="replace the store with a verified backup"))
    p.add_argument("--backup", type=Path, required=True)
    p.add_argument("--confirm-admin", metavar="NAME", help="an administrator of the current store who approves "
                   "replacing it with a backup of another store (asked for their password)")
    p.set_defaults(func=cmd_restore)
    with_db(sub.add_parser("verify", help="check encryption, structure and the audit chain")).set_defaults(func=cmd_verify)
    users = sub.add_parser("users", help="people: list, add, set-role, deactivate, reactivate, reset-password, unlock "
                                          "(administrators); passwd (your own password)")
    actions = users.add_subparsers(dest="action", required=True)
    for action, about in (("list", "every account with its role and status"),
                          ("add", "a new account with a one-time password (printed once)"),
                          ("set-role", "change an account's role (signed)"), ("deactivate", "end an account's access"),
                          ("reactivate", "an account back, with a one-time password"),
                          ("reset-password", "a forgotten password: new keys and a one-time password"),
                          ("unlock", "clear a locked-out account's failed logins"),
                          ("countersign", "trust the signing key an account registered after an upgrade"),
                          ("recovery-key", "a new recovery key, printed once; the old one stops working"),
                          ("passwd", "change your own password")):
        p = with_db(actions.add_parser(action, help=about))
        if action not in ("list", "passwd", "recovery-key"):
            p.add_argument("name", help="the user the action is about")
        if action in ("add", "set-role"):
            p.add_argument("--role", required=True, choices=["admin", "clinician", "nurse", "analyst"])
        if action == "add":
            p.add_argument("--display-name", help="the name shown for the user")
        if action == "list":
            p.add_argument("--json", action="store_true", help="as JSON")
        p.set_defaults(func=cmd_users)
    p = with_db(sub.add_parser("upgrade-store", help="bring a server store to this release's schema (the DBA's "
                                                      "set-up login, in the URL; PGPASSWORD or a prompt)"), login=False)
    p.set_defaults(func=cmd_upgrade_store)
    p = sub.add_parser("migrate-store", help="copy a desk store, with its audit chain and models, to a new server "
                                             "store and check both sides agree")
    p.add_argument("--from", dest="source", type=Path, required=True, help="the desk store file")
    p.add_argument("--to", required=True, help="postgresql://DBA@host/database?sslmode=verify-full&sslrootcert=CA (an "
                                               "empty database; the DBA's password from PGPASSWORD or a prompt)")
    p.add_argument("--user", help="an administrator of the desk store (or WARDLENS_USER); the server's first "
                                  "administrator, with the same password")
    p.set_defaults(func=cmd_migrate_store)
    p = with_db(sub.add_parser("stats", help="counts of what the store holds"))
    p.add_argument("--json", action="store_true", help='one object: {"patients": N, "encounters": N, ...}')
    p.set_defaults(func=cmd_stats)
    p = with_db(sub.add_parser("census", help="patients in hospital now"))
    p.add_argument("--ward", help="one ward only")
    p.add_argument("--json", action="store_true", help="a list of objects (patient_number, name, ward, bed, admitted, "
                                                       "expected_discharge)")
    p.set_defaults(func=cmd_census)
    p = with_db(sub.add_parser("rotate-keys", help="re-encrypt the store under a new key (admin); earlier key files "
                                                   "and passwords stop working"))
    p.add_argument("--force", action="store_true", help="rotate even if some accounts cannot be given the new key")
    p.set_defaults(func=cmd_rotate_keys)
    p = with_db(sub.add_parser("config", help="show or change site settings (admin)"))
    p.add_argument("--set", metavar="KEY=VALUE", help="for example idle_lock_minutes=5, alert_risk_threshold=0.3 or "
                                                       "staffing_ratios='{\"default\": {\"day\": 4, \"evening\": 5, \"night\": 7}}'; "
                                                       "hospital_logo=@/path/to/logo.png")
    p.set_defaults(func=cmd_config)
    wards = sub.add_parser("wards", help="wards and beds: list; add, rename, set-beds, bed-out, bed-in (administrators)")
    actions = wards.add_subparsers(dest="action", required=True)
    for action, about in (("list", "every ward with its beds in service and out of service"),
                          ("add", "a new ward with its beds"), ("rename", "a ward's name"),
                          ("set-beds", "how many beds a ward has (only never-used beds can be removed)"),
                          ("bed-out", "take a bed out of service, with the reason"), ("bed-in", "a bed back in service")):
        p = with_db(actions.add_parser(action, help=about))
        if action != "list":
            p.add_argument("name", help="the ward")
        if action == "list":
            p.add_argument("--json", action="store_true", help="as JSON")
        elif action == "add":
            p.add_argument("--type", required=True, help="medical, surgical, cardiology, icu, paediatric, maternity, "
                                                         "psychiatric or other")
            p.add_argument("--beds", type=int, required=True)
            p.add_argument("--prefix", help="bed label prefix (default: the ward's initials and '-')")
        elif action == "rename":
            p.add_argument("new_name")
        elif action == "set-beds":
            p.add_argument("beds", type=int)
        else:
            p.add_argument("bed", help="the bed's label, e.g. A1-3")
            if action == "bed-out":
                p.add_argument("--reason", required=True, help="why, e.g. 'broken', 'deep clean'")
        p.set_defaults(func=cmd_wards)
    p = with_db(sub.add_parser("report", help="write a patient risk report or a ward report as PDF"))
    p.add_argument("kind", choices=["patient", "ward"])
    p.add_argument("--patient", help="patient number, as on the patient list")
    p.add_argument("--encounter", type=int, help="encounter number (default: current or latest stay)")
    p.add_argument("--ward", help="one ward (default: all)")
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("score", help="score a UCI encounter CSV, FHIR R4 or HL7 v2 records (no store needed)")
    p.add_argument("model", choices=["readmission", "los"])
    p.add_argument("--input", type=Path, required=True, nargs="+",
                   help="a UCI CSV (gzip allowed), or FHIR / HL7 v2 files and folders")
    p.add_argument("--format", choices=("uci-csv", "fhir", "hl7v2"), help="force a format instead of detecting it")
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=cmd_score)
    x = sub.add_parser("xray", help="chest X-ray tools (no store needed)").add_subparsers(dest="xray_command", required=True)
    p = x.add_parser("classify", help="classify PNG, JPEG or DICOM files and folders into a CSV")
    p.add_argument("--input", type=Path, nargs="+", required=True)
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=cmd_xray)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["gui", *(argv or [])])
    try:
        return int(args.func(args))
    except WardLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
