"""The model-operations façade: which readmission model the session scores with, the registry of local
versions, and local retraining and recalibration."""
from __future__ import annotations

import datetime as dt

from services.core.progress import CancelToken, ProgressFn, no_progress
from services.modelops import local_training
from services.modelops.registry import ActiveModel, ModelRegistry, activate_store_model
from services.risk.facade import Risk
from services.site.session import Session


class ModelOps:
    def __init__(self, session: Session, risk: Risk) -> None:
        self.session = session
        self.risk = risk
        self.registry = ModelRegistry(session, risk.model)

    def activate(self) -> ActiveModel:
        """Make the session score with the store's promoted version (or the bundled model; a version that
        fails its checks is refused, audited and named in the returned warning)."""
        return activate_store_model(self.session, self.risk.model)

    def retrain(self, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                config: local_training.TrainingConfig | None = None,
                today: dt.date | None = None) -> local_training.TrainingResult:
        """A new candidate trained on this store's outcomes (admin; stored, not in use until promoted)."""
        return local_training.retrain(self.session, progress, cancel, config or local_training.TrainingConfig(),
                                      today, model=self.risk.model)

    def recalibrate(self, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                    config: local_training.TrainingConfig | None = None,
                    today: dt.date | None = None) -> local_training.TrainingResult:
        """The active model's trees with a calibration refitted on this store's outcomes, as a candidate."""
        return local_training.recalibrate(self.session, progress, cancel, config or local_training.TrainingConfig(),
                                          today, model=self.risk.model)
