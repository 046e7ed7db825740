"""``keras.preprocessing``: ``sequence.pad_sequences`` and ``timeseries_dataset_from_array``
(the same functions as in :mod:`rnnkit.utils`)."""

from rnnkit.preprocessing import sequence as sequence
from rnnkit.utils.timeseries import timeseries_dataset_from_array as timeseries_dataset_from_array
