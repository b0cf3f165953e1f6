"""The analytics façade: the analyst's dashboards, scored with the session's readmission model."""
from __future__ import annotations

from services.analytics.dashboards import AnalyticsService
from services.risk.facade import Risk
from services.site.session import Session


class Analytics:
    def __init__(self, session: Session, risk: Risk) -> None:
        self.session = session
        self.dashboards = AnalyticsService(session, risk.model)
