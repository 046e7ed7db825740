"""Weather forecasting: windows of past readings predict a later temperature.

As keras-io's timeseries_weather_forecasting: normalized features, `sampling_rate` over the
readings, `keras.utils.timeseries_dataset_from_array` for training and validation windows,
an LSTM and a Dense, `fit` with validation data and EarlyStopping. Synthetic readings.
On Keras itself `timeseries_dataset_from_array` needs TensorFlow (it returns a tf.data
Dataset); rnnkit returns a re-iterable of numpy batches.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

PAST = 30
FUTURE = 6
STEP = 3
SEQUENCE_LENGTH = PAST // STEP
BATCH_SIZE = 32
FEATURES = 4


def make_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype="float32")
    readings = np.stack(
        [np.sin(t / 24 + k) + 0.1 * rng.standard_normal(n) for k in range(FEATURES)], axis=1
    ).astype("float32")
    mean, std = readings[: n * 7 // 10].mean(axis=0), readings[: n * 7 // 10].std(axis=0)
    return (readings - mean) / std


def datasets(features):
    split = len(features) * 7 // 10
    train_data, val_data = features[:split], features[split:]
    start = PAST + FUTURE
    x_train = train_data[: split - start]
    y_train = train_data[start:, :1]
    dataset_train = keras.utils.timeseries_dataset_from_array(
        x_train,
        y_train,
        sequence_length=SEQUENCE_LENGTH,
        sampling_rate=STEP,
        batch_size=BATCH_SIZE,
    )
    x_val = val_data[: len(val_data) - start]
    y_val = val_data[start:, :1]
    dataset_val = keras.utils.timeseries_dataset_from_array(
        x_val,
        y_val,
        sequence_length=SEQUENCE_LENGTH,
        sampling_rate=STEP,
        batch_size=BATCH_SIZE,
    )
    return dataset_train, dataset_val


def build_model():
    inputs = keras.layers.Input(shape=(SEQUENCE_LENGTH, FEATURES))
    lstm_out = keras.layers.LSTM(16)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    dataset_train, dataset_val = datasets(make_data())
    for batch in dataset_train:
        inputs, targets = batch
        print("input shape:", tuple(inputs.shape), "target shape:", tuple(targets.shape))
        break
    model = build_model()
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=2)
    history = model.fit(
        dataset_train, epochs=3, validation_data=dataset_val, callbacks=[stop], verbose=0
    )
    loss = float(history.history["loss"][-1])
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
