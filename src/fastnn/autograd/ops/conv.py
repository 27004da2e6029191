"""Convolutions on the C++ NHWC kernels: conv, depthwise_conv, separable_conv, conv_transpose (keras.ops names and
signatures) and the fused conv + bias + activation ops the layers call.

Every op reduces to one recorded node on a 4-D channels_last buffer: 1-D inputs run through the 2-D kernels with a
height of 1 (input (N, W, C) -> (N, 1, W, C), kernel (KW, ...) -> (1, KW, ...)) and channels_first inputs are
transposed around the kernels, both by the differentiable shape ops so their gradients come for free. The backward
kernels take the gradient of the PRE-activation output: with a fused ReLU the mask is applied first (as Dense).
"""
from __future__ import annotations

from fastnn import backend as B
from fastnn.autograd.ops import shape as _shape
from fastnn.autograd.ops._util import float_tensor
from fastnn.autograd.tape import record


def standardize_data_format(data_format):
    """"channels_last" (the default, Keras's ``image_data_format()``) or "channels_first"; ValueError otherwise, with
    Keras's message (``keras.src.backend.config.standardize_data_format``). The image layers use this one too."""
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return value


def _pair(value, n, name, op):
    """An int or a sequence of ``n`` positive ints as an ``n``-tuple of Python ints."""
    values = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != n or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise ValueError(f"{op}: `{name}` must be a positive int or a tuple of {n} positive ints, but received "
                         f"{name}={value!r}")
    return tuple(int(v) for v in values)


def _padding(padding, op, allow_causal=False):
    value = str(padding).lower() if isinstance(padding, str) else padding
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    if value not in allowed:
        raise ValueError(f"{op}: `padding` must be one of {allowed}, but received padding={padding!r}")
    return value


def _operands(inputs, kernel, op):
    """(input tensor, kernel tensor) with the input cast to the kernel's float dtype."""
    tx = float_tensor(inputs, op)
    tk = float_tensor(kernel, op)
    if tx.dtype != tk.dtype:
        tx = _shape.cast(tx, str(tk.dtype))
    return tx, tk


def _to_nhwc(tx, tk, strides, dilation_rate, data_format, op, kernel_spatial_axes=2):
    """The 4-D channels_last views of a 1-D or 2-D convolution's input and kernel, with 2-tuples of strides and
    dilation; ``restore(y)`` maps the NHWC result back to the caller's rank and data format."""
    rank = tx.ndim
    if rank not in (3, 4):
        raise ValueError(f"{op}: inputs must be 3-D (batch, length, channels) or 4-D (batch, height, width, "
                         f"channels) (fastnn has no 3-D convolution yet), but received shape {tx.shape}")
    spatial = rank - 2
    if tk.ndim != spatial + 2:
        raise ValueError(f"{op}: a {spatial}-D convolution takes a {spatial + 2}-D kernel, but received kernel shape "
                         f"{tk.shape} for inputs of shape {tx.shape}")
    strides = _pair(strides, spatial, "strides", op)
    dilation = _pair(dilation_rate, spatial, "dilation_rate", op)
    first = standardize_data_format(data_format) == "channels_first"
    if first:
        tx = _shape.transpose(tx, (0,) + tuple(range(2, rank)) + (1,))
    if spatial == 1:
        tx = _shape.expand_dims(tx, 1)
        tk = _shape.expand_dims(tk, 0)
        strides, dilation = (1,) + strides, (1,) + dilation

    def restore(y):
        if spatial == 1:
            y = _shape.squeeze(y, 1)
        if first:
            y = _shape.transpose(y, (0, rank - 1) + tuple(range(1, rank - 1)))
        return y

    return tx, tk, strides, dilation, restore


def _fused_conv_node(op, forward, backward_input, backward_weight, x, kernel, bias, activation, hyper):
    """act(conv(x, kernel) + bias) as ONE node on a fused kernel family (forward with the bias + ReLU epilogue;
    backward: the ReLU mask on g, then the backward-input and backward-weight kernels, each only if needed)."""
    x_data, k = B.contiguous(x._data), B.contiguous(kernel._data)
    parents = (x, kernel)
    b = None
    if bias is not None:
        tb = float_tensor(bias, op)
        b = B.contiguous(B.astype(tb._data, k.dtype, copy=False))
        parents = parents + (tb,)
    relu = activation == "relu"
    y = forward(x_data, k, b, activation="relu" if relu else "linear", **hyper)

    def backward(g, needs):
        g = B.contiguous(g)
        if relu:
            g = B.relu_mask_multiply(g, y)
        gx = backward_input(g, k, x_data.shape, **hyper) if needs[0] else None
        gk = gb = None
        if needs[1] or (b is not None and needs[2]):
            gk, gb = backward_weight(x_data, g, k.shape, with_bias=b is not None, **hyper)
        return (gx, gk if needs[1] else None) + ((gb if needs[2] else None,) if b is not None else ())

    return record(y, parents, backward, op)


def conv2d_nhwc(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1,
                activation="linear"):
    """act(conv2d(x, kernel) + bias) as ONE node on the fused kernel: x (N, H, W, C) and kernel (KH, KW, C // groups,
    F) tensors of one float dtype, bias (F,) or None, padding "valid", "same" or (top, bottom, left, right),
    activation "linear" or "relu"."""
    return _fused_conv_node("conv", B.conv2d_forward, B.conv2d_backward_input, B.conv2d_backward_weight, x, kernel,
                            bias, activation, dict(strides=strides, padding=padding, dilation=dilation, groups=groups))


def depthwise_conv2d_nhwc(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation=(1, 1),
                          activation="linear"):
    """act(depthwise_conv2d(x, kernel) + bias) as ONE node: x (N, H, W, C), kernel (KH, KW, C, M), bias (C*M,)."""
    return _fused_conv_node("depthwise_conv", B.depthwise_conv2d_forward, B.depthwise_conv2d_backward_input,
                            B.depthwise_conv2d_backward_weight, x, kernel, bias, activation,
                            dict(strides=strides, padding=padding, dilation=dilation))


def _causal(tk, dilation, op):
    """The (top, bottom, left, right) padding of a causal 1-D convolution (the run as 2-D: all on the left)."""
    return (0, 0, dilation[1] * (tk.shape[1] - 1), 0)


def conv_bias_act(inputs, kernel, bias=None, strides=1, padding="valid", data_format=None, dilation_rate=1,
                  activation="linear"):
    """act(conv(inputs, kernel) + bias): the fused op of the Conv1D / Conv2D layers (bias and ReLU in the GEMM
    epilogue). Arguments as :func:`conv`, plus bias (filters,) or None and activation "linear" or "relu";
    padding may also be "causal" for 1-D inputs (all the padding on the left, as Keras's Conv1D)."""
    op = "conv"
    tx, tk = _operands(inputs, kernel, op)
    padding = _padding(padding, op, allow_causal=True)
    tx, tk, strides, dilation, restore = _to_nhwc(tx, tk, strides, dilation_rate, data_format, op)
    if padding == "causal":
        if inputs_rank(inputs) != 3:
            raise ValueError(f'{op}: padding="causal" is only for 1-D convolutions, but received inputs of shape '
                             f"{tuple(inputs.shape)}")
        padding = _causal(tk, dilation, op)
    channels, per_group = tx.shape[-1], tk.shape[-2]
    if per_group <= 0 or channels % per_group:
        raise ValueError(f"{op}: the input channels ({channels}) must be a multiple of the kernel's input channels "
                         f"({per_group}, kernel shape {tk.shape}): groups = input channels // kernel in-channels")
    groups = channels // per_group
    if tk.shape[-1] % groups:
        raise ValueError(f"{op}: the kernel's output channels ({tk.shape[-1]}) must be divisible by groups "
                         f"({groups}), but received kernel shape {tk.shape} for {channels} input channels")
    return restore(conv2d_nhwc(tx, tk, bias, strides, padding, dilation, groups, activation))


def inputs_rank(inputs):
    return len(inputs.shape)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution (1-D and 2-D), keras.ops.conv: inputs (N, *spatial, C) (or (N, C, *spatial) with
    channels_first), kernel (*kernel_size, C // groups, F); groups inferred from the channel counts as Keras does.
    padding "valid" or "same" (TensorFlow's: the odd padding element at the end)."""
    _padding(padding, "conv")
    return conv_bias_act(inputs, kernel, None, strides, padding, data_format, dilation_rate)


def depthwise_conv_bias_act(inputs, kernel, bias=None, strides=1, padding="valid", data_format=None,
                            dilation_rate=1, activation="linear"):
    """act(depthwise_conv(inputs, kernel) + bias): the fused op of DepthwiseConv2D."""
    op = "depthwise_conv"
    tx, tk = _operands(inputs, kernel, op)
    padding = _padding(padding, op)
    tx, tk, strides, dilation, restore = _to_nhwc(tx, tk, strides, dilation_rate, data_format, op)
    if tk.shape[-2] != tx.shape[-1]:
        raise ValueError(f"{op}: the kernel's input channels ({tk.shape[-2]}, kernel shape {tk.shape}) must equal "
                         f"the input channels ({tx.shape[-1]})")
    return restore(depthwise_conv2d_nhwc(tx, tk, bias, strides, padding, dilation, activation))


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Depthwise convolution, keras.ops.depthwise_conv: kernel (*kernel_size, C, depth_multiplier) -> C *
    depth_multiplier output channels (channel c * M + m from input channel c)."""
    return depthwise_conv_bias_act(inputs, kernel, None, strides, padding, data_format, dilation_rate)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """keras.ops.separable_conv: depthwise_conv (strides, padding, dilation) then a 1x1 stride-1 conv with
    pointwise_kernel (*ones, C * depth_multiplier, F)."""
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(y, pointwise_kernel, 1, "valid", data_format, 1)


def conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation):
    """Keras's output length of a transposed convolution along one axis (backend_utils
    ``_get_output_shape_given_tf_padding``)."""
    if size is None:
        return None
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return (size - 1) * stride + span + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + span % 2 + output_padding


def conv_transpose_nhwc(x, kernel, bias, output_shape, strides, padding, dilation, activation="linear"):
    """act(conv_transpose(x) + bias) as ONE node: x (N, h, w, Cin), kernel (KH, KW, Cout, Cin), output (N, H, W,
    Cout): the backward-input kernel of the convolution (N, H, W, Cout) -> (N, h, w, Cin) run forward."""
    op = "conv_transpose"
    x_data, k = B.contiguous(x._data), B.contiguous(kernel._data)
    parents = (x, kernel)
    hyper = dict(strides=strides, padding=padding, dilation=dilation)
    y = B.conv2d_backward_input(x_data, k, output_shape, **hyper)
    b = None
    if bias is not None:
        tb = float_tensor(bias, op)
        b = B.astype(tb._data, k.dtype, copy=False)
        parents = parents + (tb,)
        y = B.add(y, b)
    relu = activation == "relu"
    if relu:
        y = B.maximum(y, 0)

    def backward(g, needs):
        g = B.contiguous(g)
        if relu:
            g = B.relu_mask_multiply(g, y)
        # y = A^T x for the convolution A: dx = A g (the forward conv), dk from the conv of g against x.
        gx = B.conv2d_forward(g, k, None, **hyper) if needs[0] else None
        gk = B.conv2d_backward_weight(g, x_data, k.shape, with_bias=False, **hyper)[0] if needs[1] else None
        out = (gx, gk)
        if b is not None:
            out = out + ((B.sum(g, axis=(0, 1, 2)) if needs[2] else None),)
        return out

    return record(y, parents, backward, "conv_transpose")


def conv_transpose_bias_act(inputs, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                            data_format=None, dilation_rate=1, activation="linear"):
    """act(conv_transpose(inputs, kernel) + bias): the op of Conv2DTranspose."""
    op = "conv_transpose"
    tx, tk = _operands(inputs, kernel, op)
    padding = _padding(padding, op)
    tx, tk, strides, dilation, restore = _to_nhwc(tx, tk, strides, dilation_rate, data_format, op)
    spatial = inputs_rank(inputs) - 2
    if output_padding is None:
        pads = (None, None)
    else:
        pads = (output_padding,) * spatial if isinstance(output_padding, int) else tuple(output_padding)
        if len(pads) != spatial or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pads):
            raise ValueError(f"{op}: `output_padding` must be None, a non-negative int or a tuple of {spatial} of "
                             f"them, but received output_padding={output_padding!r}")
        for p, s, name in zip(pads, strides[-spatial:], "hw"[-spatial:] if spatial == 2 else "w"):
            if p >= s:
                raise ValueError(f"{op}: each output_padding must be smaller than its stride, but received "
                                 f"output_padding={output_padding!r} for strides={tuple(strides[-spatial:])}")
        pads = (0,) + pads if spatial == 1 else pads
    if tk.shape[-1] != tx.shape[-1]:
        raise ValueError(f"{op}: the kernel's last axis ({tk.shape[-1]}, kernel shape {tk.shape}) must equal the "
                         f"input channels ({tx.shape[-1]}); the kernel is (*kernel_size, filters, in_channels)")
    n, h, w, _ = tx.shape
    out_h = conv_transpose_output_size(h, tk.shape[0], strides[0], padding, pads[0], dilation[0])
    if spatial == 1:
        out_h = 1
    out_w = conv_transpose_output_size(w, tk.shape[1], strides[1], padding, pads[1], dilation[1])
    output_shape = (n, out_h, out_w, tk.shape[2])
    # The output must be a size whose convolution gives the input back (TensorFlow refuses the others too).
    for size, out, k_, s, d in ((h, out_h, tk.shape[0], strides[0], dilation[0]),
                                (w, out_w, tk.shape[1], strides[1], dilation[1])):
        span = (k_ - 1) * d + 1
        back = -(-out // s) if padding == "same" else (out - span) // s + 1
        if back != size:
            raise ValueError(f"{op}: output_padding={output_padding!r} with padding={padding!r}, strides="
                             f"{tuple(strides[-spatial:])} and kernel {tuple(tk.shape[2 - spatial:2])} gives an "
                             f"output size {out} whose convolution has size {back}, not the input's {size} "
                             f"(inputs of shape {tuple(inputs.shape)}); choose another output_padding")
    return restore(conv_transpose_nhwc(tx, tk, bias, output_shape, strides, padding, dilation, activation))


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """Transposed convolution, keras.ops.conv_transpose: kernel (*kernel_size, filters, C); output sizes by Keras's
    rule (valid: (n - 1) * s + k + output_padding; same: n * s, or (n - 1) * s + k % 2 + output_padding)."""
    return conv_transpose_bias_act(inputs, kernel, None, strides, padding, output_padding, data_format,
                                   dilation_rate)
