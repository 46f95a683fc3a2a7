"""Export and benchmark: quantize to TFLite, convert to ONNX, verify, measure. TensorFlow is imported lazily."""
