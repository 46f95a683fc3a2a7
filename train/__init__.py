"""Training: Keras 3 models on MNIST with augmentation. Imports Keras only when a function needs it."""
