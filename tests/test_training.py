"""Pieces of `digits train` that need no MNIST: weight averaging and how it is chosen, and distillation targets."""
import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from train.train import AugmentedBatches, AverageLastEpochs, choose_average, load_teachers  # noqa: E402


def _tiny_model(classes: int = 3) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


def test_the_average_is_the_mean_of_the_last_epochs_only():
    model = _tiny_model()
    average = AverageLastEpochs(count=2, epochs=3)
    average.set_model(model)
    for epoch in range(3):
        weights = [np.full_like(w, epoch + 1.0) for w in model.get_weights()]
        model.set_weights(weights)
        average.on_epoch_end(epoch)
    averaged = average.averaged()
    assert np.allclose(averaged[0], 2.5)  # epochs 2 and 3, not 1
    assert AverageLastEpochs(count=2, epochs=3).averaged() is None


def test_the_averaged_weights_are_kept_only_when_their_validation_loss_is_lower():
    model = _tiny_model()
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8)
    labels = np.zeros(32, np.int64)  # every image is class 0
    uniform = [np.zeros_like(w) for w in model.get_weights()]  # 1/3 for each class: log(3)
    sure_of_0, sure_of_2 = ([uniform[0], np.array(bias, np.float32)] for bias in ([5, 0, 0], [0, 0, 5]))

    model.set_weights(uniform)
    better = choose_average(model, sure_of_0, images, labels)
    assert better["kept"] == "averaged" and better["best_epoch"]["log_loss"] == pytest.approx(np.log(3), abs=1e-4)
    assert np.array_equal(model.get_weights()[1], sure_of_0[1])

    model.set_weights(uniform)
    worse = choose_average(model, sure_of_2, images, labels)
    assert worse["kept"] == "best epoch" and worse["averaged"]["accuracy"] == 0.0
    assert not model.get_weights()[1].any()


def _sure_of(class_index: int, classes: int = 3) -> keras.Model:
    """A teacher that answers `class_index` with probability ~0.9 whatever it sees."""
    model = _tiny_model(classes)
    kernel, bias = (np.zeros_like(w) for w in model.get_weights())
    bias[class_index] = np.log(0.9 * (classes - 1) / 0.1)
    model.set_weights([kernel, bias])
    return model


def test_a_teacher_blends_its_probabilities_into_every_target():
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    labels = np.zeros(8, np.int64)
    plain = AugmentedBatches(images, labels, 8, seed=0, augment=None, classes=3)
    taught = AugmentedBatches(images, labels, 8, seed=0, augment=None, classes=3,
                              teachers=(_sure_of(2), _sure_of(1)), teacher_weight=0.5)
    _, one_hot = plain[0]
    batch, targets = taught[0]
    assert np.array_equal(one_hot, np.tile([1.0, 0.0, 0.0], (8, 1)))
    # the teachers' mean is (0.05, 0.475, 0.475); half of it plus half the label
    assert np.allclose(targets, [[0.525, 0.2375, 0.2375]], atol=1e-4)
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-5) and batch.shape == (8, 28, 28, 1)


def test_a_teacher_with_other_classes_is_refused(tmp_path):
    path = tmp_path / "ten.keras"
    _sure_of(0, classes=10).save(path)
    with pytest.raises(ValueError, match="10 classes, the student has 11"):
        load_teachers((str(path),), 11)
    assert len(load_teachers((str(path),), 10)) == 1


def test_every_architecture_is_a_train_option_and_the_teacher_is_the_wider_cnn():
    import argparse

    from train.cli import add_arguments
    from train.model import ARCHITECTURES, build_model

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    arch = next(action for action in parser._actions if action.dest == "arch")
    assert set(arch.choices) == set(ARCHITECTURES)
    student, teacher = build_model("cnn", 11), build_model("teacher", 11)
    assert teacher.output_shape == student.output_shape == (None, 11)
    assert teacher.count_params() > 4 * student.count_params()


def test_a_model_of_another_architecture_is_refused_as_a_start_in_one_line(tmp_path):
    from train.model import build_model
    from train.train import initial_weights

    teacher = tmp_path / "teacher.keras"
    build_model("teacher", 11).save(teacher)
    with pytest.raises(ValueError, match="same --arch") as refused:
        initial_weights(build_model("cnn", 11), str(teacher))
    assert "\n" not in str(refused.value)
