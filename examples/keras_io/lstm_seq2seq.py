"""Character-level sequence-to-sequence translation (encoder-decoder LSTMs, teacher forcing).

As keras-io's lstm_seq2seq: train on (encoder input, decoder input) -> decoder target, then
rebuild an encoder model and a one-step decoder model from the trained layers
(`model.input`, `model.layers[i].output`) and decode greedily.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

LATENT = 16
NUM_ENC = 8  # input alphabet size
NUM_DEC = 6  # target alphabet size; index 0 is "\t" (start), 1 is "\n" (stop)
ENC_LEN = 7
DEC_LEN = 6


def make_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    enc = np.zeros((n, ENC_LEN, NUM_ENC), dtype="float32")
    dec_in = np.zeros((n, DEC_LEN, NUM_DEC), dtype="float32")
    dec_out = np.zeros((n, DEC_LEN, NUM_DEC), dtype="float32")
    for i in range(n):
        src = rng.integers(0, NUM_ENC, size=ENC_LEN)
        enc[i, np.arange(ENC_LEN), src] = 1.0
        target = [0] + list(2 + src[: DEC_LEN - 2] % (NUM_DEC - 2)) + [1]
        dec_in[i, np.arange(DEC_LEN), target] = 1.0
        dec_out[i, np.arange(DEC_LEN - 1), target[1:]] = 1.0
        dec_out[i, DEC_LEN - 1, 1] = 1.0
    return [enc, dec_in], dec_out


def build_model(optimizer="rmsprop"):
    encoder_inputs = keras.Input(shape=(None, NUM_ENC))
    encoder = keras.layers.LSTM(LATENT, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]

    decoder_inputs = keras.Input(shape=(None, NUM_DEC))
    decoder_lstm = keras.layers.LSTM(LATENT, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = keras.layers.Dense(NUM_DEC, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)

    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def inference_models(model):
    """Encoder and one-step decoder rebuilt from the trained layers."""
    encoder_inputs = model.input[0]
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = keras.Model(encoder_inputs, [state_h_enc, state_c_enc])

    decoder_inputs = model.input[1]
    decoder_state_input_h = keras.Input(shape=(LATENT,))
    decoder_state_input_c = keras.Input(shape=(LATENT,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=decoder_states_inputs
    )
    decoder_dense = model.layers[4]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = keras.Model(
        [decoder_inputs] + decoder_states_inputs, [decoder_outputs, state_h_dec, state_c_dec]
    )
    return encoder_model, decoder_model


def decode_sequence(encoder_model, decoder_model, input_seq):
    states = encoder_model.predict(input_seq, verbose=0)
    target_seq = np.zeros((1, 1, NUM_DEC), dtype="float32")
    target_seq[0, 0, 0] = 1.0
    decoded = []
    for _ in range(DEC_LEN):
        tokens, h, c = decoder_model.predict([target_seq] + list(states), verbose=0)
        index = int(np.argmax(tokens[0, -1, :]))
        if index == 1:
            break
        decoded.append(index)
        target_seq = np.zeros((1, 1, NUM_DEC), dtype="float32")
        target_seq[0, 0, index] = 1.0
        states = [h, c]
    return decoded


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    data = make_data()
    loss = train(model, data)
    encoder_model, decoder_model = inference_models(model)
    print("decoded:", decode_sequence(encoder_model, decoder_model, data[0][0][:1]))
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
