"""Keras' ``keras.utils`` helpers for sequence data: ``pad_sequences``, ``to_categorical``,
``timeseries_dataset_from_array`` and ``set_random_seed``."""

from rnnkit.utils.labels import to_categorical as to_categorical
from rnnkit.utils.seed import set_random_seed as set_random_seed
from rnnkit.utils.sequences import pad_sequences as pad_sequences
from rnnkit.utils.timeseries import TimeseriesDataset as TimeseriesDataset
from rnnkit.utils.timeseries import timeseries_dataset_from_array as timeseries_dataset_from_array
