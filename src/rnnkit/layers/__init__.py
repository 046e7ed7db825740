"""Keras-style layers (Keras' aliases included: ``MaxPool1D`` is ``MaxPooling1D``)."""

from rnnkit.layers.attention import AdditiveAttention as AdditiveAttention
from rnnkit.layers.attention import Attention as Attention
from rnnkit.layers.base import Layer as Layer
from rnnkit.layers.bidirectional import Bidirectional as Bidirectional
from rnnkit.layers.cell_wrappers import DropoutCell as DropoutCell
from rnnkit.layers.cell_wrappers import OutputProjectionCell as OutputProjectionCell
from rnnkit.layers.convolutional import Conv1D as Conv1D
from rnnkit.layers.convolutional import Conv2D as Conv2D
from rnnkit.layers.convolutional import Conv3D as Conv3D
from rnnkit.layers.core import Activation as Activation
from rnnkit.layers.core import Dense as Dense
from rnnkit.layers.core import Dropout as Dropout
from rnnkit.layers.core import Embedding as Embedding
from rnnkit.layers.core import Flatten as Flatten
from rnnkit.layers.core import Masking as Masking
from rnnkit.layers.core import Reshape as Reshape
from rnnkit.layers.input_layer import Input as Input
from rnnkit.layers.input_layer import InputLayer as InputLayer
from rnnkit.layers.lambda_layer import Lambda as Lambda
from rnnkit.layers.merging import Add as Add
from rnnkit.layers.merging import Average as Average
from rnnkit.layers.merging import Concatenate as Concatenate
from rnnkit.layers.merging import Dot as Dot
from rnnkit.layers.merging import Multiply as Multiply
from rnnkit.layers.merging import Subtract as Subtract
from rnnkit.layers.merging import add as add
from rnnkit.layers.merging import average as average
from rnnkit.layers.merging import concatenate as concatenate
from rnnkit.layers.merging import dot as dot
from rnnkit.layers.merging import multiply as multiply
from rnnkit.layers.merging import subtract as subtract
from rnnkit.layers.multi_head_attention import MultiHeadAttention as MultiHeadAttention
from rnnkit.layers.normalization import BatchNormalization as BatchNormalization
from rnnkit.layers.normalization import LayerNormalization as LayerNormalization
from rnnkit.layers.pooling import AveragePooling1D as AveragePooling1D
from rnnkit.layers.pooling import GlobalAveragePooling1D as GlobalAveragePooling1D
from rnnkit.layers.pooling import GlobalMaxPooling1D as GlobalMaxPooling1D
from rnnkit.layers.pooling import MaxPooling1D as MaxPooling1D
from rnnkit.layers.recurrent import GRU as GRU
from rnnkit.layers.recurrent import LSTM as LSTM
from rnnkit.layers.recurrent import SimpleRNN as SimpleRNN
from rnnkit.layers.reshaping import Cropping1D as Cropping1D
from rnnkit.layers.reshaping import Permute as Permute
from rnnkit.layers.reshaping import RepeatVector as RepeatVector
from rnnkit.layers.reshaping import UpSampling1D as UpSampling1D
from rnnkit.layers.reshaping import ZeroPadding1D as ZeroPadding1D
from rnnkit.layers.rnn import RNN as RNN
from rnnkit.layers.rnn_cells import GRUCell as GRUCell
from rnnkit.layers.rnn_cells import LSTMCell as LSTMCell
from rnnkit.layers.rnn_cells import SimpleRNNCell as SimpleRNNCell
from rnnkit.layers.serialization import deserialize as deserialize
from rnnkit.layers.serialization import serialize as serialize
from rnnkit.layers.spatial_dropout import SpatialDropout1D as SpatialDropout1D
from rnnkit.layers.stacked_cells import StackedRNNCells as StackedRNNCells
from rnnkit.layers.time_distributed import TimeDistributed as TimeDistributed

# Keras' alternative names for the same classes.
Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution3D = Conv3D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
