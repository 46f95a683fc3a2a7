"""The one preprocessing path: rendered digits at any place, size, polarity and pen width come out as MNIST."""
import numpy as np
import pytest

from edge_app.classifier import load_classifier
from edge_app.preprocess import to_grayscale, to_mnist_input, to_model_batch

from conftest import MODELS, needs_mnist
from rendering import render_on_paper

VARIANTS = {
    "centred": {},
    "off_centre": {"centre": (90, 110)},
    "small_on_big_page": {"height": 45, "canvas": (480, 640)},
    "large": {"height": 280, "canvas": (420, 520)},
    "light_on_dark": {"dark_on_light": False},
    "thick_pen": {"pen": 4},
    "fine_pen_large": {"pen": -3, "height": 300, "canvas": (420, 520)},
    "noisy_grey_paper": {"noise_std": 12, "paper": 170, "ink": 70},
}


@pytest.fixture(scope="module")
def int8_model():
    return load_classifier(MODELS / "cnn_int8.tflite")


@pytest.fixture(scope="module")
def sample(mnist_test):
    picked = np.random.default_rng(1).choice(len(mnist_test.labels), 60, replace=False)
    return mnist_test.images[picked], mnist_test.labels[picked]


@needs_mnist
@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_digits_are_read(variant, sample, int8_model):
    images, labels = sample
    prepared = [to_mnist_input(render_on_paper(img, seed=i, **VARIANTS[variant])) for i, img in enumerate(images)]
    assert all(p is not None and p.shape == (28, 28) and p.dtype == np.uint8 for p in prepared)
    predicted = np.array([p.digit for p in int8_model.predict(np.stack(prepared))])
    assert (predicted == labels).mean() >= 0.95, f"{variant}: {(predicted == labels).mean():.2%}"


@needs_mnist
def test_polarity_does_not_change_the_result(sample):
    image = sample[0][0]
    dark = to_mnist_input(render_on_paper(image, dark_on_light=True))
    light = to_mnist_input(render_on_paper(image, dark_on_light=False))
    assert np.abs(dark.astype(int) - light.astype(int)).mean() < 2


@needs_mnist
def test_mnist_digits_come_back_as_mnist(sample):
    """Our preparation of an MNIST digit must be (nearly) the digit itself: same box, same centring."""
    overlaps, offsets = [], []
    for image in sample[0]:
        again = to_mnist_input(image).astype(np.float32) / 255
        original = image.astype(np.float32) / 255
        overlaps.append((again * original).sum() / np.sqrt((again ** 2).sum() * (original ** 2).sum()))
        def centre(im):
            return (np.indices(im.shape) * im).sum(axis=(1, 2)) / im.sum()

        offsets.append(centre(again) - centre(original))
    assert np.median(overlaps) > 0.97  # most come back pixel for pixel; rounding the shift costs a few
    assert np.abs(np.mean(offsets, axis=0)).max() < 0.15  # no systematic off-centre placement


def test_output_is_fitted_and_centred():
    canvas = np.full((200, 300), 240, np.uint8)
    canvas[40:160, 200:215] = 20  # a tall bar, far right: a "1"
    digit = to_mnist_input(canvas)
    rows, cols = np.nonzero(digit > 64)
    assert rows.max() - rows.min() + 1 in (19, 20, 21)  # longer side fitted into the 20 px box
    mass = digit.astype(float) / digit.sum()
    centre = (np.indices(digit.shape) * mass).sum(axis=(1, 2))
    assert np.allclose(centre, 13.5, atol=1.0)
    assert digit.max() == 255 and digit[0].max() == 0


@pytest.mark.parametrize("image", [
    np.full((100, 100), 255, np.uint8),
    np.zeros((100, 100, 3), np.uint8),
    np.clip(np.random.default_rng(0).normal(200, 6, (120, 160)), 0, 255).astype(np.uint8),
], ids=["white", "black", "paper_texture"])
def test_blank_images_have_no_digit(image):
    assert to_mnist_input(image) is None


def test_odd_image_types_are_accepted():
    gray = np.full((60, 60), 230, np.uint8)
    gray[15:45, 28:33] = 10
    bgra = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    transparent = bgra.copy()
    transparent[:, :, 3] = 0  # fully transparent: shows as blank paper
    for image in (gray, gray[:, :, None], bgra, gray.astype(np.uint16) * 257, gray.astype(np.float32) / 255):
        assert to_mnist_input(image) is not None
    assert to_mnist_input(transparent) is None
    assert to_grayscale(bgra).shape == (60, 60)
    with pytest.raises(ValueError):
        to_grayscale(np.zeros((0, 5), np.uint8))


def test_model_batch_layout():
    batch = to_model_batch(np.full((3, 28, 28), 255, np.uint8))
    assert batch.shape == (3, 28, 28, 1) and batch.dtype == np.float32 and batch.max() == 1.0
