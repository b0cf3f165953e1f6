"""A patient's hospital use before a stay, from the record itself where the record can say it.

UCI rows carry "visits in the year before" as reported at that admission; a store that holds the patient's earlier
stays with their dates knows this hospital's part of it (the UCI field said 0 beside a record with an admission four
months earlier). Where this stay and an earlier one have dates, the record's count of stays in the 365 days before
is shown first, and the reported figures beside it when they say more (they may count other hospitals); otherwise
the reported figures alone, each saying where it comes from."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.domain import Encounter


@dataclass(frozen=True)
class PriorUse:
    on_record: int | None     # stays on this record in the year before; None: the record's dates cannot say
    inpatient: int            # as reported at admission (UCI), or counted in the store (records from a feed)
    emergency: int
    outpatient: int
    counted: bool = False     # the figures were counted in the store from the feed's encounters

    @property
    def reported(self) -> str:
        return f"{self.outpatient} outpatient / {self.emergency} emergency / {self.inpatient} inpatient"

    @property
    def text(self) -> str:
        if self.counted:
            return f"{self.reported} (counted in this record)"
        if self.on_record is None:
            return f"{self.reported} (as reported at admission)"
        own = f"{self.on_record} hospital stay{'' if self.on_record == 1 else 's'} on this record"
        if self.inpatient or self.emergency or self.outpatient:
            return f"{own}; reported at admission: {self.reported}"
        return own


def prior_use(e: Encounter, record: list[Encounter]) -> PriorUse:
    """Use in the 365 days before `e` was admitted: stays on the record when dates allow, and the reported fields."""
    if e.from_feed:   # the store counted them itself, by class, when the records came in
        return PriorUse(None, e.number_inpatient, e.number_emergency, e.number_outpatient, counted=True)
    others = [o for o in record if o.encounter_nbr != e.encounter_nbr and o.admit_time is not None
              and o.encounter_class == "inpatient"]
    on_record = None
    if e.admit_time is not None and any(o.admit_time < e.admit_time for o in others):
        start = e.admit_time - dt.timedelta(days=365)
        on_record = sum(1 for o in others if start <= o.admit_time < e.admit_time)
    return PriorUse(on_record, e.number_inpatient, e.number_emergency, e.number_outpatient)
