"""The MLflow pyfunc wrapper of a darkfab model. Imports mlflow: only `export_mlflow` and MLflow load it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ..errors import IntegrityError
from ..train import DarkfabModel, load_model


class DarkfabPyfunc(PythonModel):
    """Predicts what darkfab predicts: class labels (classification) or values (regression).

    The darkfab artifact travels as an MLflow artifact and is checked against its sha256 when loaded.
    """

    ARTIFACT = "darkfab_model"

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        self.model: DarkfabModel | None = None

    def load_context(self, context: Any) -> None:
        data = Path(context.artifacts[self.ARTIFACT]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise IntegrityError(
                f"the darkfab artifact of this MLflow model has sha256 {digest}, but {self.sha256} was exported; "
                "fix: export the version again with `darkfab export mlflow`"
            )
        self.model = load_model(data)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        if self.model is None:
            raise RuntimeError("the model is not loaded; load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.model.predict(frame)
