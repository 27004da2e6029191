"""Layers with Keras 3's names, arguments and weight layouts (``keras.layers``)."""
from fastnn.layers.layer import InputSpec, KerasTensor, Layer  # noqa: I001
from fastnn.layers.input_layer import Input, InputLayer
from fastnn.layers.core import Activation, Dense, Dropout, Flatten, Identity, Lambda, Masking
from fastnn.layers.reshaping import (Cropping1D, Cropping2D, Permute, RepeatVector, Reshape, UpSampling1D, UpSampling2D,
                                     ZeroPadding1D, ZeroPadding2D)
from fastnn.layers.pooling import (GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D,
                                   GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D)
from fastnn.layers.conv import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Convolution1D,  # h-convlayers
                                Convolution1DTranspose, Convolution2D, Convolution2DTranspose, DepthwiseConv1D,
                                DepthwiseConv2D, SeparableConv1D, SeparableConv2D, SeparableConvolution1D,
                                SeparableConvolution2D)
from fastnn.layers.pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,  # h-poollayers
                                   MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from fastnn.layers.normalization import BatchNormalization  # h-poollayers
from fastnn.layers.normalization import GroupNormalization, LayerNormalization, RMSNormalization, UnitNormalization
from fastnn.layers.regularization import (ActivityRegularization, GaussianDropout, GaussianNoise, SpatialDropout1D,
                                          SpatialDropout2D)
from fastnn.layers.activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from fastnn.layers.preprocessing import Normalization, Rescaling
from fastnn.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from fastnn.layers.embedding import Embedding  # h-embed
from fastnn.layers.wrappers import TimeDistributed, Wrapper  # h-embed
from fastnn.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells  # h-rnnl
from fastnn.layers.rnn import GRU, LSTM, RNN, SimpleRNN  # h-rnnl
from fastnn.layers.bidirectional import Bidirectional  # h-rnnl
from fastnn.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                                   concatenate, dot, maximum, minimum, multiply, subtract)

__all__ = [
    "Layer", "InputSpec", "KerasTensor", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten",
    "Identity", "Lambda", "Masking", "Reshape", "Permute", "RepeatVector", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "SpatialDropout1D",
    "SpatialDropout2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D",
    "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Convolution1D", "Convolution2D",
    "SeparableConvolution2D", "Convolution2DTranspose", "DepthwiseConv1D", "SeparableConv1D", "Conv1DTranspose",
    "SeparableConvolution1D", "Convolution1DTranspose",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D",
    "AvgPool2D", "BatchNormalization",  # h-poollayers
    "Embedding", "TimeDistributed", "Wrapper",  # h-embed
    "RNN", "LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells",  # h-rnnl
    "Bidirectional",  # h-rnnl
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "LayerNormalization", "RMSNormalization", "UnitNormalization",
    "GroupNormalization", "GaussianNoise", "GaussianDropout", "ActivityRegularization", "Rescaling",
    "Normalization", "Dot", "dot", "MultiHeadAttention", "Attention", "AdditiveAttention",
]
