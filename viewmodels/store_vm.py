"""The Store page (administrators): where the store is, its size, schema version and what it holds, the latest
backup, and the full store check with its report (the same check as `verify`)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message

_COUNT_LABELS = (("patients", "Patients"), ("encounters", "Stays and visits"), ("diagnoses", "Diagnoses"),
                 ("medications", "Medications"), ("labs", "Lab results"), ("images", "X-ray images"),
                 ("users", "Accounts"))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.0f} kB"


class StoreViewModel(StatusViewModel):
    detailsChanged = Signal(list)   # [(label, value)] for the details form
    reportChanged = Signal(list)    # the lines of the last check's report

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.details: list[tuple[str, str]] = []
        self.report: list[str] = []
        self.verifying = False

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.READ_AUDIT)

    @Slot()
    def refresh(self) -> None:
        site = self.session.site

        def read(_p, _c):
            backups = site.backups()
            return site.store_info(), self.session.stats(), (backups[0] if backups else None)
        self.runner.run("Reading the store's details", read, on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, result) -> None:
        info, counts, last = result
        server = self.session.on_server
        rows = [("Server", info.path), ("Size", _mb(info.store_bytes))] if server else [
                ("File", info.path),
                ("Size", f"{_mb(info.store_bytes)} (write-ahead log {_mb(info.journal_bytes)}, key file "
                         f"{_mb(info.key_file_bytes)}); {100 * info.free_pages / max(info.pages, 1):.0f}% free space")]
        rows += [
                ("Schema version", f"{info.schema_version}" + ("" if info.schema_version == info.latest_schema
                                                               else f" (this WardLens writes {info.latest_schema})")),
                ("Latest backup", "made by the hospital's DBA on the server" if server else
                 "none in the backup folder" if last is None else
                 f"{last.day:%a %d %b %Y}, {_mb(last.size)}, " +
                 {True: "verified when made", False: "NOT verified", None: "not recorded by this store"}[last.verified])]
        by_class = counts.get("encounters_by_class", {})
        rows += [(label, f"{counts.get(key, 0):,}" + (
            " (" + ", ".join(f"{v:,} {k}" for k, v in by_class.items() if v) + ")" if key == "encounters" and by_class
            else "")) for key, label in _COUNT_LABELS]
        if rows != self.details:
            self.details = rows
            self.detailsChanged.emit(rows)

    @Slot()
    def verify(self) -> None:
        """Encryption, structure, foreign keys, the audit chain with its signatures and anchors, sealed identities."""
        if self.verifying:
            return
        self.verifying = True
        self._set_status("Checking the whole store…")
        self.runner.run("Verifying the store", lambda p, c: self.session.site.verify(), on_success=self._verified,
                        on_failure=self._failed, owner=self)

    def _verified(self, r) -> None:
        self.verifying = False
        if r.ok and r.server:
            head = (f"Store verified: the server's guards in place (audit log append-only, no login acting as the "
                    f"owner), schema v{r.schema_version}, audit chain of {r.audit_rows:,} rows intact, every row "
                    "signed by the person it names.")
            lines = [head]
        elif r.ok:
            head = (f"Store verified: encryption and structure clean, schema v{r.schema_version}, audit chain of "
                    f"{r.audit_rows:,} rows intact, signatures and anchors verified.")
            lines = [head]
        else:
            head = f"PROBLEMS: {len(r.problems)} found. " + (
                "Tell the hospital's DBA and IT support; keep the server as it is for them to look at." if r.server
                else "Restore the latest verified backup or call your IT support.")
            lines = [head] + [f"• {p}" for p in r.problems]
        lines += [f"Note: {n}" for n in r.notes]
        self._set_status(head)
        self.report = lines
        self.reportChanged.emit(lines)

    def _failed(self, exc: BaseException) -> None:
        self.verifying = False
        self._set_status(user_message(exc))
