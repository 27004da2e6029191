"""Listing 8 of the article, "Embedding with masking into an LSTM", on synthetic padded sequences.

The listing is unchanged apart from the import and its free names (maxlen, vocab_size, embedding_dim, latent_dim and
the data). The data: token sequences of random lengths, zero-padded at the start (token 0 is the padding the
Embedding masks), labelled by whether one of three keyword tokens occurs (example_data.keyword_sequences). Full
recipe: binary crossentropy, Adam, 5 epochs, batch 64, on 4,000 sequences, evaluated on 1,000 held out.
``--quick``: a few batches of one epoch.
"""
from example_data import keyword_sequences, options, report

import fastnn as keras
from fastnn.layers import LSTM, Dense, Embedding, Input
from fastnn.models import Model

args = options(__doc__.splitlines()[0], default_epochs=5)
keras.utils.set_random_seed(0)
maxlen, vocab_size, embedding_dim, latent_dim = 40, 1000, 32, 32
x_train, y_train = keyword_sequences(256 if args.quick else 4000, vocab_size, maxlen, seed=0)
x_test, y_test = keyword_sequences(128 if args.quick else 1000, vocab_size, maxlen, seed=1)

# --- listing 8 ---
inputs = Input(shape=(maxlen,))
embedding = Embedding(vocab_size, embedding_dim, mask_zero=True)(inputs)
lstm_out = LSTM(units=latent_dim, dropout=0.2, recurrent_dropout=0.2)(embedding)
dense_out = Dense(units=1, activation='sigmoid')(lstm_out)
model = Model(inputs=[inputs], outputs=[dense_out])
# --- end of listing 8 ---

model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2)
report(history, model, x_test, y_test)
