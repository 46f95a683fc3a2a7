"""The light edge core: numpy, OpenCV and a small runtime (LiteRT or ONNX Runtime). No TensorFlow."""
import os

# OpenCV reads its decode limit once, when cv2 is first imported: an image whose header claims more pixels
# is refused instead of being allocated (2^30 by default, far beyond a 1 GB Raspberry Pi).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(50_000_000))
