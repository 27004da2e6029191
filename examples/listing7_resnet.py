"""Listing 7 of the article, "A residual network (functional API)", in its working form, trained on MNIST digits.

As printed the listing does not run, in Keras either: ``resnet_layer`` is never defined, and ``Add`` joins tensors of
different widths once ``filters`` grows. The working form kept here: the seed's ``residual_block`` with one change,
a 1x1 convolution (+ BatchNormalization) projecting the shortcut where the channel count changes; the undefined
``resnet_layer(inputs, 64, 2, stride=1)`` becomes a stem of two residual blocks of width 64 (what its arguments
say: 64 filters, 2 blocks, stride 1) after a 3x3 convolution from the image's channels; then the listing's loop
(13 blocks of widths 128, 256 and 512), GlobalAveragePooling2D and a softmax Dense, as printed.

That network has 52 million weights and costs about 82 GFLOPs per 28x28 image forward (about 3.5 s per image for
forward and backward on 2 cores), so the free names are chosen small: the images are MNIST averaged down 2x2 to
14x14 (a quarter of the cost), and the full recipe is one epoch, batch 32, Adam, categorical crossentropy, on the
first 512 of the 8,000 training images (about 6 minutes on 2 cores: ~0.65 s per image forward + backward),
evaluated on 256 held out (``--epochs`` and ``--train-images`` change it). That shows the network runs and trains;
it is not a result: 16 steps teach a 52-million-weight network little, and BatchNormalization's moving statistics
(momentum 0.99) are still near their initial values after them, so the held-out numbers (inference mode) are near
chance, in Keras as here. ``--quick``: two batches of 4 images averaged down to 7x7, to check it still runs.
"""
import sys

from example_data import downsample, mnist_images, options, report

import fastnn as keras
from fastnn import layers
from fastnn.layers import Input
from fastnn.models import Model

train_images = 512
if "--train-images" in sys.argv:  # not one of options()'s: only this example has it
    at = sys.argv.index("--train-images")
    train_images = int(sys.argv[at + 1])
    del sys.argv[at:at + 2]
args = options(__doc__.splitlines()[0], default_epochs=1)
keras.utils.set_random_seed(0)
if args.quick:
    (x_train, y_train), (x_test, y_test) = mnist_images(True, quick_train=8, quick_test=4)
    x_train, x_test = downsample(x_train, 4), downsample(x_test, 4)
    batch_size = 4
else:
    (x_train, y_train), (x_test, y_test) = mnist_images(False)
    x_train, y_train, x_test, y_test = x_train[:train_images], y_train[:train_images], x_test[:256], y_test[:256]
    x_train, x_test = downsample(x_train, 2), downsample(x_test, 2)
    batch_size = 32
img_height, img_width, num_channels = x_train.shape[1:]
num_classes = 10


# --- listing 7, working form ---
def residual_block(inputs, filters):
    x = layers.Conv2D(filters, kernel_size=3, strides=1, padding='same')(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation('relu')(x)
    x = layers.Conv2D(filters, kernel_size=3, strides=1, padding='same')(x)
    x = layers.BatchNormalization()(x)
    shortcut = inputs
    if inputs.shape[-1] != filters:  # the fix: project the shortcut to the new width
        shortcut = layers.Conv2D(filters, kernel_size=1, strides=1, padding='same')(inputs)
        shortcut = layers.BatchNormalization()(shortcut)
    add = layers.Add()([shortcut, x])
    out = layers.Activation('relu')(add)
    return out


def resnet_layer(inputs, filters, num_blocks, stride=1):
    # The listing's undefined stem: a convolution to `filters` channels, then `num_blocks` residual blocks.
    x = layers.Conv2D(filters, kernel_size=3, strides=stride, padding='same')(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation('relu')(x)
    for _ in range(num_blocks):
        x = residual_block(x, filters)
    return x


inputs = Input((img_height, img_width, num_channels))
outputs = resnet_layer(inputs, 64, 2, stride=1)  # as printed: `resnet_layer(inputs, 64, 2, stride=1)(inputs)`
for i in range(2, 15):
    outputs = residual_block(outputs, 64 * min(2**(i-1), 8))
outputs = layers.GlobalAveragePooling2D()(outputs)
predictions = layers.Dense(num_classes, activation='softmax')(outputs)
model = Model(inputs=inputs, outputs=predictions)
# --- end of listing 7 ---

model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=batch_size, verbose=2)
report(history, model, x_test, y_test)
