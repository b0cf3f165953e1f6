"""One way to open a session, used by the GUI and every command alike.

open_desk() unlocks the store (key file, password, throttling; migrations run as the store opens), applies the
site's settings (idle lock), activates the store's promoted readmission model (else the bundled one), and
returns a Desk: the session with one façade per domain. Views, view-models, reports and the command line call
these façades, never a connection."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.domain import Permission, User
from services.analytics.facade import Analytics
from services.capacity.facade import Capacity
from services.imaging.facade import Imaging
from services.modelops.facade import ModelOps
from services.modelops.registry import ActiveModel
from services.records.facade import Records
from services.reports.facade import Reports
from services.risk.facade import Risk
from services.site import accounts
from services.site.facade import Site
from services.site.session import Session
from services.store.dialect import is_server_url


@dataclass(eq=False)
class Desk:
    session: Session
    site: Site
    records: Records
    capacity: Capacity
    imaging: Imaging
    risk: Risk
    analytics: Analytics
    models: ModelOps
    reports: Reports
    active_model: ActiveModel | None = None

    @classmethod
    def around(cls, session: Session) -> "Desk":
        """The façades of an unlocked session, with the store's model active. Locks the session on failure."""
        try:
            site = Site(session)
            records = Records(session)
            capacity = Capacity(session, records, site.settings)
            imaging = Imaging(session, records)
            risk = Risk(session, records, capacity, site.settings)
            models = ModelOps(session, risk)
            desk = cls(session, site, records, capacity, imaging, risk, Analytics(session, risk), models,
                       Reports(session, records, risk, capacity, imaging))
            desk.active_model = models.activate()
            return desk
        except BaseException:
            session.lock(reason="session could not be opened")
            raise

    @property
    def warnings(self) -> list[str]:
        """What the user must be told on opening: integrity findings of the unlock, a stored model refused."""
        found = list(self.session.warnings)
        if self.active_model is not None and self.active_model.warning:
            found.append(self.active_model.warning)
        return found

    def stats(self) -> dict:
        """The counts `stats --json` prints (an object scripts can rely on; README)."""
        out = self.records.counts()
        out["images"] = self.imaging.count()
        out["users"] = int(self.session.db.conn.execute("SELECT count(*) FROM users").fetchone()[0])
        return out

    def census_rows(self) -> list[dict]:
        """Patients in hospital now, for `census --json`: number (a pseudonym for analysts), name (the same pseudonym
        label for analysts), ward, bed, admitted, expected discharge (empty when beyond the model's range)."""
        rows = []
        for p in self.capacity.census.inpatients():
            rows.append({"patient_number": p.mrn, "name": p.patient_label, "ward": p.ward, "bed": p.bed,
                         "admitted": p.admit_time.date().isoformat(), "days_in_hospital": p.days_in,
                         "expected_discharge": p.expected_discharge.isoformat() if p.expected_discharge else "",
                         "beyond_model_range": bool(p.beyond_model)})
        return rows

    # what every page asks of the session
    @property
    def user(self) -> User:
        return self.session.user

    def can(self, permission: Permission) -> bool:
        return self.session.can(permission)

    @property
    def sees_names(self) -> bool:
        return self.session.sees_names

    @property
    def locked(self) -> bool:
        return self.session.locked

    @property
    def store_path(self) -> Path | str:
        """What opens this store again: the desk store's file, or the server store's URL (without a user)."""
        address = getattr(self.session.db, "address", None)
        return address.with_user("").url if address is not None else self.session.store_path

    @property
    def on_server(self) -> bool:
        """A server store: backups, key rotation and the recovery key are the DBA's there, not a desk's."""
        return self.session.on_server

    def change_listener(self):
        """Other desks' changes as they happen (a server store), or None (a desk store has one desk)."""
        make = getattr(self.session.db, "change_listener", None)
        return make() if make is not None else None

    def interrupt(self) -> None:
        """Stop whatever query a worker is running (before the store closes at lock)."""
        self.session.db.interrupt()

    def lock(self, reason: str = "user") -> None:
        self.session.lock(reason=reason)


def open_desk(path: Path | str, username: str, password: str, new_password: str | None = None) -> Desk:
    """`path`: a desk store file, or a server store's postgresql:// URL (the person's own PostgreSQL login).
    `new_password` replaces a one-time password set by an administrator (accounts.unlock)."""
    if is_server_url(path):
        from services.site.server_accounts import unlock_server   # loads the PostgreSQL driver only when used
        return Desk.around(unlock_server(str(path), username, password, new_password=new_password))
    return Desk.around(accounts.unlock(path, username, password, new_password=new_password))


def open_desk_with_recovery(path: Path | str, recovery_key: str) -> Desk:
    return Desk.around(accounts.unlock_with_recovery(path, recovery_key))
