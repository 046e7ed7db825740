"""``keras.preprocessing.sequence``: ``pad_sequences``."""

from rnnkit.utils.sequences import pad_sequences as pad_sequences
