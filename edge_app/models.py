"""Where the shipped models live, and the manifest that describes them."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

MODEL_ENV_VAR = "DIGITS_MODEL"
DEFAULT_MODEL_NAME = "cnn_int8.tflite"  # the edge default: full-integer int8, smallest and fastest
MANIFEST_NAME = "manifest.json"


def models_dir() -> Path:
    """The project's models/ folder: beside the packages in a checkout, else the copy installed with the
    wheel (the `digits_models` data package), else ./models."""
    beside_package = Path(__file__).resolve().parent.parent / "models"
    if beside_package.is_dir():
        return beside_package
    installed = importlib.util.find_spec("digits_models")
    if installed is not None and installed.submodule_search_locations:
        return Path(list(installed.submodule_search_locations)[0])
    return Path.cwd() / "models"


def default_model_path() -> Path:
    """$DIGITS_MODEL if set, else the shipped int8 TFLite model."""
    chosen = os.environ.get(MODEL_ENV_VAR)
    return Path(chosen) if chosen else models_dir() / DEFAULT_MODEL_NAME


def read_manifest(folder: Path | None = None) -> dict:
    """The folder's manifest.json; {"artifacts": {}} when there is none. ValueError when it is not a
    manifest (not JSON, or not an object whose "artifacts" maps file names to objects)."""
    path = (folder or models_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {"artifacts": {}}
    manifest = json.loads(path.read_text())
    artifacts = manifest.get("artifacts", {}) if isinstance(manifest, dict) else None
    if not isinstance(artifacts, dict) or not all(isinstance(entry, dict) for entry in artifacts.values()):
        raise ValueError(f"{path}: not a manifest (expected {{\"artifacts\": {{FILE: {{...}}}}}})")
    return manifest
