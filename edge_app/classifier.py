"""One `Classifier` interface, a backend per runtime: LiteRT/TFLite for .tflite, ONNX Runtime for .onnx.

Every backend takes MNIST-style digits from `preprocess.to_mnist_input` ((n, 28, 28) uint8) and
returns probabilities ((n, classes) float32): the ten digits, and for models trained with one, an 11th
class "not a digit" (what detection cut out that is no digit: an edge, a letter, two digits merged).
A model's classes come from its manifest entry or its ONNX metadata; a model that records neither
is taken by its output size (10: digits, 11: digits and "not a digit"), so older 10-class models load.
Quantization scale and zero point come from the model file itself, never from constants, so a float
model and an int8 model are used the same way. (A Keras backend for baselines lives in
`train.keras_classifier`: the edge core never imports Keras.)
"""
from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_app.preprocess import to_model_batch
from edge_app.stderr import native_stderr_silenced

MAX_THREADS = 256  # far more than any edge device has cores; the runtimes crash on absurd counts (100000)


class ModelError(RuntimeError):
    """A model file that cannot be used: missing, corrupt, wrong format, or no runtime installed for it."""


DIGIT_CLASSES = tuple(str(d) for d in range(10))
NOT_A_DIGIT = "not a digit"
NOT_A_DIGIT_INDEX = 10  # its column, after the ten digits


def class_names(count: int) -> tuple[str, ...]:
    """The classes of a model with `count` outputs that records none: the two layouts this project makes."""
    if count == len(DIGIT_CLASSES):
        return DIGIT_CLASSES
    if count == len(DIGIT_CLASSES) + 1:
        return DIGIT_CLASSES + (NOT_A_DIGIT,)
    raise ValueError(f"no known class list has {count} classes")


@dataclass(frozen=True)
class Prediction:
    digit: int  # the likeliest digit, even when "not a digit" is likelier still
    confidence: float  # calibrated probability of `digit`, in [0, 1]; low when the region is no digit
    top3: tuple[tuple[int, float], ...]  # (digit, probability), most likely first
    not_digit: float = 0.0  # probability that the region is no digit at all (0 for 10-class models)

    @property
    def is_digit(self) -> bool:
        return self.confidence >= self.not_digit


def predictions_from_probabilities(probabilities: np.ndarray) -> list[Prediction]:
    """(n, 10) or (n, 11) probabilities -> n Predictions. With a "not a digit" column the digits'
    probabilities are shares of all 11, so a region the model rejects reads as an unsure digit everywhere
    a confidence is compared, and `not_digit` says why."""
    results = []
    for row in np.asarray(probabilities, np.float32):
        digits = row[:NOT_A_DIGIT_INDEX]
        best = np.argsort(-digits, kind="stable")[:3]  # ties: the lower digit first, the same on every CPU
        not_digit = float(row[NOT_A_DIGIT_INDEX]) if len(row) > NOT_A_DIGIT_INDEX else 0.0
        results.append(Prediction(int(best[0]), float(row[best[0]]),
                                  tuple((int(d), float(row[d])) for d in best), not_digit))
    return results


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Log-probabilities: the logits up to a per-row constant, which softmax ignores."""
    return np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def with_reject_bias(probabilities: np.ndarray, reject_class: int, bias: float) -> np.ndarray:
    """The probabilities with `bias` added to the "not a digit" logit: its prior odds times e^bias (what
    `train.calibrate.fold_reject_bias` bakes into a model, here applied to one reading)."""
    logits = log_probabilities(probabilities)
    logits[:, reject_class] += bias
    return softmax(logits)


def prior_shift(trained_share: float | None, share: float) -> float:
    """What to add to a class's logit where it is `share` of what is read instead of its `trained_share` of the
    training examples: the difference of their log-odds; 0 when the training share is unknown."""
    if trained_share is None:
        return 0.0
    return float(np.log(share / (1 - share)) - np.log(trained_share / (1 - trained_share)))


class Classifier(ABC):
    """A loaded model. Subclasses implement `_forward` on a prepared float batch."""

    runtime: str = "?"  # the package that runs the model, e.g. "ai_edge_litert", "onnxruntime"
    labels: tuple[str, ...] = DIGIT_CLASSES  # one name per output column, set when the model loads
    # The share of "not a digit" among the examples the model learnt from: its prior for that class, from the
    # manifest beside it; None when not recorded (a 10-class model, or one exported before it was recorded).
    not_digit_share: float | None = None

    def __init__(self, path: Path):
        self.path = Path(path)

    @abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> (n, classes) float32 probabilities."""

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """(n, 28, 28) or (28, 28) uint8 MNIST-style digits -> (n, len(self.labels)) float32 probabilities."""
        batch = to_model_batch(digits)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._forward(batch)

    def predict(self, digits: np.ndarray, not_digit_bias: float = 0.0) -> list[Prediction]:
        """`not_digit_bias`: added to the "not a digit" logit, where the reading's context makes a non-digit
        likelier or rarer than among the training examples (ignored by a model without that class)."""
        probabilities = self.probabilities(digits)
        if not_digit_bias and probabilities.shape[1] > NOT_A_DIGIT_INDEX:
            probabilities = with_reject_bias(probabilities, NOT_A_DIGIT_INDEX, not_digit_bias)
        return predictions_from_probabilities(probabilities)


def _tflite_interpreter_class():
    """The TFLite interpreter of the lightest runtime installed: LiteRT, then tflite-runtime, then TF."""
    for module_name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(module_name).Interpreter, module_name.split(".")[0]
        except ImportError:
            continue
    try:
        # Last resort on a machine that has TensorFlow but neither light runtime (never on the edge install).
        return importlib.import_module("tensorflow").lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise ModelError("no TFLite runtime is installed: pip install ai-edge-litert "
                         "(or tflite-runtime with numpy<2 on older Pi setups)") from None


class TFLiteClassifier(Classifier):
    """A .tflite model through LiteRT. int8 models are quantized/dequantized with the model's own parameters."""

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path)
        interpreter_class, self.runtime = _tflite_interpreter_class()
        try:
            with native_stderr_silenced():
                self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{path} is not a valid TFLite model ({str(error).splitlines()[0]}): "
                             "re-export it with `digits export`") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.labels = check_shapes(path, list(self.input["shape"]), list(self.output["shape"]))
        self.batch_size = int(self.input["shape"][0])
        self._pixel_to_input = self._quantization_table()

    def _quantization_table(self) -> np.ndarray | None:
        """uint8 pixel -> the model's quantized input value, from the model's own scale and zero point.

        A 256-entry lookup gives exactly what quantizing the float input would, without a float
        round trip per call (about 20 us of a 100 us int8 inference). None for float models.
        """
        scale, zero_point = self.input["quantization"]
        if not scale:
            return None
        info = np.iinfo(self.input["dtype"])
        levels = to_model_batch(np.arange(256, dtype=np.uint8)[None, :]).ravel()  # the float inputs
        return np.clip(np.round(levels / scale + zero_point), info.min, info.max).astype(self.input["dtype"])

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        digits = np.asarray(digits)
        if self._pixel_to_input is None or digits.dtype != np.uint8:
            return super().probabilities(digits)
        if digits.ndim == 2:
            digits = digits[None]
        if len(digits) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._invoke(self._pixel_to_input[digits][..., None])

    @property
    def input_dtype(self) -> str:
        return np.dtype(self.input["dtype"]).name

    def _resize_batch(self, n: int) -> None:
        # Resizing re-plans the graph, so it happens only when the batch size changes, not per call.
        if n != self.batch_size:
            self.interpreter.resize_tensor_input(self.input["index"], [n, 28, 28, 1])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.batch_size = n

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        scale, zero_point = self.input["quantization"]
        dtype = self.input["dtype"]
        if scale:  # quantized input: q = x / scale + zero_point
            info = np.iinfo(dtype)
            batch = np.clip(np.round(batch / scale + zero_point), info.min, info.max)
        return self._invoke(batch.astype(dtype))

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) in the model's input dtype -> (n, classes) float32 probabilities."""
        self._resize_batch(len(batch))
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])
        out_scale, out_zero_point = self.output["quantization"]
        if out_scale:
            return ((raw.astype(np.float32) - out_zero_point) * out_scale).astype(np.float32)
        return raw.astype(np.float32)


class OnnxClassifier(Classifier):
    """An .onnx model through ONNX Runtime (float or QDQ int8; the graph takes float input either way)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path)
        try:
            import onnxruntime
        except ImportError:
            raise ModelError("ONNX Runtime is not installed: pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for corrupt files
            raise ModelError(f"{path} is not a valid ONNX model ({str(error).splitlines()[0][:120]}): "
                             "re-export it with `digits export`") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.labels = check_shapes(path, inputs[0].shape, outputs[0].shape if outputs else [],
                                   self.metadata.get("labels"))
        self.input_name = inputs[0].name

    input_dtype = "float32"

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0].astype(np.float32)


# suffix -> backend; the one table that maps a model file to its runtime.
BACKENDS: dict[str, type[Classifier]] = {".tflite": TFLiteClassifier, ".onnx": OnnxClassifier}


INPUT_SHAPE = (28, 28, 1)  # what every consumer feeds: one grey 28x28 digit per batch row (NHWC)


def _dimension(size) -> int | None:
    """A tensor dimension as an int; None for a free one (-1, None, "batch")."""
    return int(size) if isinstance(size, (int, np.integer)) and size > 0 else None


def _manifest_entry(path: Path) -> dict:
    """What the manifest beside the model records for it; {} when there is no readable entry."""
    from edge_app.models import read_manifest

    try:
        entry = read_manifest(path.parent).get("artifacts", {}).get(path.name)
    except (OSError, ValueError, AttributeError):
        entry = None
    return entry if isinstance(entry, dict) else {}


def recorded_not_digit_share(path: Path) -> float | None:
    """The model's training share of "not a digit" as its manifest entry records it; None if it does not."""
    share = _manifest_entry(path).get("not_digit_share")
    return float(share) if isinstance(share, (int, float)) and 0 < share < 1 else None


def recorded_labels(path: Path, metadata_labels: str | None = None) -> list | None:
    """The class list the manifest beside the model records for it, else its ONNX metadata's; None if neither."""
    entry = _manifest_entry(path)
    if isinstance(entry.get("labels"), list):
        return entry["labels"]
    if metadata_labels:
        try:
            labels = json.loads(metadata_labels)
        except ValueError:
            return None
        return labels if isinstance(labels, list) else None
    return None


def check_shapes(path: Path, input_shape, output_shape, metadata_labels: str | None = None) -> tuple[str, ...]:
    """The model's class names; ModelError naming the shapes when a model does not take (n, 28, 28, 1) or
    give one probability per class of a list the app knows: a model for something else would otherwise
    load fine and crash at the first image, or answer garbage."""
    dims = [_dimension(d) for d in input_shape]
    if len(dims) != 4 or tuple(dims[1:]) != INPUT_SHAPE:
        shown = [_dimension(d) or -1 for d in input_shape]
        raise ModelError(f"{path}: takes input {shown}, but the app feeds (n, 28, 28, 1) grey digits; "
                         "use a model exported by `digits export`")
    outs = [_dimension(d) for d in output_shape]
    shown = [_dimension(d) or -1 for d in output_shape]
    labels = recorded_labels(path, metadata_labels)
    if labels is not None and (list(labels[:10]) != list(DIGIT_CLASSES) or labels[10:] not in ([], [NOT_A_DIGIT])):
        raise ModelError(f"{path}: its classes {labels} are not the digits 0-9 (and optionally {NOT_A_DIGIT!r}); "
                         "use a model exported by `digits export`")
    expected = len(labels) if labels is not None else None
    known = (len(DIGIT_CLASSES), len(DIGIT_CLASSES) + 1)  # the ten digits, then "not a digit" if it has one
    if len(outs) != 2 or outs[1] not in known or (expected is not None and outs[1] != expected):
        wanted = f"(n, {expected})" if expected is not None else "(n, 10) or (n, 11)"
        raise ModelError(f"{path}: gives output {shown}, but the app expects {wanted} class probabilities; "
                         "use a model exported by `digits export`")
    return tuple(labels) if labels is not None else class_names(outs[1])


def check_manifest_hash(path: Path) -> None:
    """ModelError when the manifest beside the model lists it with another sha256: the file was changed
    after export (edited, damaged, swapped), so its verified accuracy no longer holds."""
    expected = _manifest_entry(path).get("sha256")
    if not isinstance(expected, str) or not expected:
        return  # no readable manifest entry: nothing to check against
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ModelError(f"{path}: its sha256 {digest[:12]}... is not the {expected[:12]}... that "
                         f"{path.parent / 'manifest.json'} records: the file changed after export; re-export "
                         "it with `digits export`, or pass --allow-modified-model to run it anyway")


def load_classifier(path: str | Path, threads: int | None = None, verify: bool = True) -> Classifier:
    """Open a .tflite or .onnx model with the matching runtime; ModelError with a usable message otherwise.

    With `verify`, a model listed in the manifest beside it must have the sha256 recorded there.
    """
    path = Path(path)
    backend = BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise ModelError(f"{path}: unknown model format {path.suffix!r}; use a .tflite or .onnx file "
                         "(export one with `digits export`)")
    if not path.is_file():
        raise ModelError(f"model file {path} not found: pass --model PATH or export one with `digits export`")
    if path.stat().st_size == 0:
        raise ModelError(f"model file {path} is empty: re-export it with `digits export`")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ModelError(f"{threads} threads: give 1 to {MAX_THREADS}")
    if verify:
        check_manifest_hash(path)
    classifier = backend(path, threads=threads)
    if NOT_A_DIGIT in classifier.labels:
        classifier.not_digit_share = recorded_not_digit_share(path)
    return classifier
