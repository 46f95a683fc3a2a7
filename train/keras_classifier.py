"""The Keras backend of the Classifier interface: the baseline the edge runtimes are compared with."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_app.classifier import Classifier, ModelError


class KerasClassifier(Classifier):
    """A .keras model, called directly (`model(x)`) or through `model.predict` as the tutorials do."""

    runtime = "keras"
    input_dtype = "float32"

    def __init__(self, path: Path | None = None, threads: int | None = None, model=None, use_predict: bool = False):
        super().__init__(Path(path) if path else Path("<in-memory>.keras"))
        import keras

        if model is None:
            try:
                model = keras.models.load_model(path, compile=False)
            except (OSError, ValueError) as error:
                raise ModelError(f"{path} is not a loadable .keras model ({str(error).splitlines()[0][:120]})") from None
        self.model, self.use_predict = model, use_predict
        if use_predict:
            self.runtime = "keras.predict"

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self.use_predict:
            return np.asarray(self.model.predict(batch, verbose=0), np.float32)
        return np.asarray(self.model(batch, training=False), np.float32)
