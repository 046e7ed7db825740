"""Datasets: Keras' MNIST loader, a small shipped digits set, and seed 004's time series."""

from rnnkit.datasets import digits as digits
from rnnkit.datasets import mnist as mnist
from rnnkit.datasets import time_series as time_series
