"""The capacity façade: census with each inpatient's stay estimate, ward forecasts, staffing and beds."""
from __future__ import annotations

from services.capacity.beds import BedService
from services.capacity.census import CensusService
from services.capacity.wards import WardAdmin
from services.records.facade import Records
from services.site.session import Session
from services.site.settings import SettingsService


class Capacity:
    def __init__(self, session: Session, records: Records, settings: SettingsService) -> None:
        self.session = session
        self.census = CensusService(session, records.patients, settings)
        self.beds = BedService(session)
        self.wards = WardAdmin(session)
