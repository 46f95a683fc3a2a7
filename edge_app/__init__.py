"""The light edge core: numpy, OpenCV and a small runtime (LiteRT or ONNX Runtime). No TensorFlow."""
