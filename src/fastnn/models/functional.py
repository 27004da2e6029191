"""Functional models: a graph of layer calls from symbolic inputs to outputs, executed on autograd Tensors.

Example:
    >>> inputs = fastnn.Input((784,))
    >>> x = fastnn.layers.Dense(64, activation="relu")(inputs)
    >>> model = fastnn.Model(inputs, fastnn.layers.Dense(10)(x))
"""
from __future__ import annotations

import numpy as np

from fastnn.autograd import Tensor
from fastnn.autograd.keras_attrs import set_keras_mask
from fastnn.layers.input_layer import InputLayer
from fastnn.layers.layer import InputSpec, KerasTensor, Layer, _np_dtype, flatten, map_structure, unique_name
from fastnn.models.model import Model


def _to_input_dtype(x, input_tensor):
    """A float Tensor cast to the float dtype of the model Input it feeds (Keras converts each input to its Input's
    dtype, so a float64 Input keeps float64 data float64 and a float32 Input rounds it); its mask is kept. Other
    values (integer tensors, non-float Inputs) pass unchanged, as before."""
    if not isinstance(x, Tensor) or x._data.dtype.kind != "f":
        return x
    want = _np_dtype(input_tensor.dtype)
    if want.kind != "f" or x.dtype == want:
        return x
    from fastnn.autograd.keras_attrs import get_keras_mask
    from fastnn.autograd.ops.shape import cast

    y = cast(x, want)
    mask = get_keras_mask(x)
    if mask is not None:
        set_keras_mask(y, mask)
    return y


def _node_of(t: KerasTensor):
    layer, node_index, _ = t._history
    return layer._inbound_nodes[node_index]


def build_graph(inputs, outputs, model_name):
    """Topologically ordered nodes from ``inputs`` to ``outputs`` (iterative post-order DFS), the order the model
    runs them in. Raises ValueError for tensors not connected to the inputs."""
    input_ids = {id(t) for t in inputs}
    order, state = [], {}
    for out in outputs:
        if not isinstance(out, KerasTensor) or out._history is None:
            raise ValueError(f'Model "{model_name}": every output must be a symbolic tensor produced by a layer '
                             f"(from fastnn.Input and layer calls), but received {out!r}")
        stack = [(_node_of(out), False)]
        while stack:
            node, done = stack.pop()
            if done:
                if state.get(id(node)) != 2:
                    state[id(node)] = 2
                    order.append(node)
                continue
            if state.get(id(node)):
                continue
            state[id(node)] = 1
            stack.append((node, True))
            for t in reversed(node.input_tensors):
                if id(t) in input_ids:
                    pnode = _node_of(t)
                    if state.get(id(pnode)) != 2:
                        state[id(pnode)] = 2
                        order.append(pnode)
                    continue
                if t._history is None:
                    raise ValueError(f'Model "{model_name}": graph disconnected at {t!r}')
                pnode = _node_of(t)
                if isinstance(pnode.layer, InputLayer) and id(t) not in input_ids:
                    raise ValueError(
                        f"Graph disconnected: cannot find parent for tensor {t!r} at layer \"{node.layer.name}\". "
                        f"The following previous layers were accessed without issue: "
                        f"{[n.layer.name for n in order]}. Pass every fastnn.Input the outputs depend on as an input "
                        f'of model "{model_name}".')
                if state.get(id(pnode)) != 2:
                    stack.append((pnode, False))
    return order


def keras_layer_order(inputs, outputs):
    """The layers of the graph in Keras's order (see ``keras_graph_map``)."""
    return keras_graph_map(inputs, outputs)[0]


def graph_is_sequential_like(model):
    """Keras's test in print_summary: a functional model prints as a Sequential one (no "Connected to" column)
    when every depth holds one node with at most one input tensor and no layer is called twice in the graph."""
    for nodes in model._nodes_by_depth.values():
        if len(nodes) > 1 or (len(nodes) == 1 and len(nodes[0].input_tensors) > 1):
            return False
    graph_nodes = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
    return all(sum(id(n) in graph_nodes for n in layer._inbound_nodes) <= 1 for layer in model.layers)


def keras_graph_map(inputs, outputs):
    """(layers, nodes_by_depth) of the graph as Keras 3 computes them. The layers in Keras 3's order (``keras.src.ops.function.map_graph``), which ``model.layers``,
    ``get_weights()``, ``summary()`` and ``get_config()`` follow, so weights transfer between the two libraries.

    Keras walks the graph depth-first from each output (inputs of a node in argument order), numbering each layer
    when it is first reached; then it gives every node a depth (0 at the outputs; a parent is one deeper than its
    deepest child) and a shared layer the largest depth of its nodes; layers are listed by decreasing depth and,
    at equal depth, by that first-reached number. Input layers not connected to the outputs get depth 0 and lead
    the layers of that depth.
    """
    input_ids = {id(t) for t in inputs}
    finished, in_progress = set(), set()
    nodes_in_decreasing_depth, first_reached = [], {}
    for out in outputs:
        # Keras's recursive _build_map_helper, made iterative: (tensor, children_done) frames.
        stack = [(out, False)]
        while stack:
            tensor, children_done = stack.pop()
            layer, node_index, _ = tensor._history
            node = layer._inbound_nodes[node_index]
            if children_done:
                finished.add(id(node))
                in_progress.discard(id(node))
                nodes_in_decreasing_depth.append(node)
                continue
            if id(node) in finished:
                continue
            is_input = isinstance(layer, InputLayer)
            if not is_input and id(tensor) in input_ids:
                finished.add(id(node))
                continue
            if id(node) in in_progress:
                raise ValueError(f"Tensor {tensor!r} from layer '{layer.name}' is part of a cycle.")
            first_reached.setdefault(id(layer), (len(first_reached), layer))
            in_progress.add(id(node))
            stack.append((tensor, True))
            if not is_input:
                # Reversed so the first argument is walked first, as in Keras's recursion.
                stack.extend((t, False) for t in reversed(node.input_tensors))
    in_graph = {id(n) for n in nodes_in_decreasing_depth}
    node_depth, layer_depth = {}, {}
    for node in reversed(nodes_in_decreasing_depth):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.input_tensors:
            parent = _node_of(t)
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:  # unused inputs: depth 0, after everything reached from the outputs
        layer = t._history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            first_reached[id(layer)] = (-1, layer)
            node = layer._inbound_nodes[0]
            node_depth[id(node)] = 0
            nodes_in_decreasing_depth.append(node)
    nodes_by_depth = {}
    for node in nodes_in_decreasing_depth:
        nodes_by_depth.setdefault(node_depth[id(node)], [])
        if all(n is not node for n in nodes_by_depth[node_depth[id(node)]]):
            nodes_by_depth[node_depth[id(node)]].append(node)
    by_layer = {key: layer for key, (_, layer) in first_reached.items()}
    layers = sorted(by_layer.values(), key=lambda l: (-layer_depth[id(l)], first_reached[id(l)][0]))
    return layers, nodes_by_depth


class Functional(Model):
    """A model defined by ``Model(inputs, outputs)``: several inputs and outputs (lists or dicts), shared layers
    (one layer called at several places) and nested models work."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        Model.__init__(self, name=name or unique_name("functional"), trainable=trainable, **kwargs)
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs):
        flat_in = flatten(inputs)
        for t in flat_in:
            if not isinstance(t, KerasTensor) or t._history is None or not isinstance(t._history[0], InputLayer):
                raise ValueError(f'Model "{self.name}": inputs must be tensors from fastnn.Input(...), but received '
                                 f"{t!r}")
        if isinstance(inputs, dict):
            self._input_keys = list(inputs.keys())
        else:
            self._input_keys = None
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self.inputs = flat_in
        self.outputs = flatten(outputs)
        self._nodes = build_graph(self.inputs, self.outputs, self.name)
        self._graph_layers, self._nodes_by_depth = keras_graph_map(self.inputs, self.outputs)
        self.output_names = list(outputs.keys()) if isinstance(outputs, dict) else \
            [t._history[0].name for t in self.outputs]
        self.input_names = [t._history[0].name for t in self.inputs]
        self.input_spec = [InputSpec(shape=t.shape) for t in self.inputs]
        self._multi_input = len(self.inputs) > 1
        self.built = True

    def _sublayers(self):
        return list(self._graph_layers)

    @property
    def operations(self):
        """Every node's layer or operation in Keras's order (operators on symbolic tensors included)."""
        return list(self._graph_layers)

    @property
    def layers(self):
        """The layers in Keras's order; operations such as ``x + y`` are not layers (see ``operations``)."""
        from fastnn.layers.symbolic_ops import SymbolicOp

        return [l for l in self._graph_layers if not isinstance(l, SymbolicOp)]

    def _order_inputs(self, inputs):
        if isinstance(inputs, dict):
            keys = self._input_keys or self.input_names
            missing = [k for k in keys if k not in inputs]
            if missing:
                raise ValueError(f'Model "{self.name}": missing input(s) {missing}; expected keys {keys}')
            return [inputs[k] for k in keys]
        flat = flatten(inputs)
        if len(flat) != len(self.inputs):
            raise ValueError(f'Layer "{self.name}" expects {len(self.inputs)} input(s), but it received {len(flat)} '
                             "input tensors.")
        return flat

    def __call__(self, *args, **kwargs):
        if args and isinstance(args[0], dict) and not any(isinstance(v, KerasTensor) for v in args[0].values()):
            args = (self._order_inputs(args[0]),) + args[1:]
        return super().__call__(*args, **kwargs)

    def _autocast(self):
        # As Keras's Functional (`_convert_input_args = False`): the model does not cast its inputs to its own dtype
        # policy; call() converts each one to the dtype of its Input instead.
        return False

    def _graph_plan(self):
        """The graph walk, computed once per graph: one entry per node (InputLayers left out) in run order.

        A node called on one symbolic tensor with constant scalar keyword arguments (None, bools, numbers,
        strings) and giving one symbolic tensor is a "simple" entry ``(True, layer, input id, kwargs, output id,
        node)``: it runs without mapping the node's structures. Any other node is ``(False, node)`` and runs the
        general way (_run_node). Both give the layer the same arguments."""
        plan = self.__dict__.get("_plan")
        if plan is not None and plan[0] is self._nodes:
            return plan[1]
        entries = []
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args, kwargs = node.args, node.kwargs
            simple = (isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], KerasTensor)
                      and isinstance(node.outputs, KerasTensor) and len(node.output_tensors) == 1
                      and all(v is None or isinstance(v, (bool, int, float, str)) for v in kwargs.values()))
            if simple:
                entries.append((True, node.layer, id(args[0]), dict(kwargs), id(node.outputs), node))
            else:
                entries.append((False, node))
        object.__setattr__(self, "_plan", (self._nodes, entries))
        return entries

    @staticmethod
    def _run_node(node, values, training):
        get = lambda t: values[id(t)] if isinstance(t, KerasTensor) else t  # noqa: E731
        args = map_structure(get, node.args)
        kw = map_structure(get, node.kwargs)
        if training is not None and node.layer._call_has_training:
            kw["training"] = training  # as Keras: the model's flag overrides what the node recorded
        out = node.layer(*args, **kw)
        for kt, v in zip(node.output_tensors, flatten(out)):
            values[id(kt)] = v

    def call(self, inputs, training=None, mask=None):
        if type(inputs) is Tensor and len(self.inputs) == 1:  # one input: _order_inputs would give [inputs]
            flat = [_to_input_dtype(inputs, self.inputs[0])]
        else:
            flat = [_to_input_dtype(x, kt) for x, kt in zip(self._order_inputs(inputs), self.inputs)]
        if mask is not None:
            # As Keras: masks given for the inputs are attached to them, so the layers that read them find them.
            for x, m in zip(flat, flatten(mask)):
                if m is not None and isinstance(x, Tensor):
                    set_keras_mask(x, m)
        values = {}
        for kt, v in zip(self.inputs, flat):
            values[id(kt)] = v
        for entry in self._graph_plan():
            if entry[0]:
                _, layer, in_id, kw, out_id, node = entry
                if training is not None and layer._call_has_training:
                    kw = dict(kw, training=training)  # as Keras: the model's flag overrides the node's
                out = layer(values[in_id], **kw)
                if type(out) is Tensor:
                    values[out_id] = out
                else:
                    for kt, v in zip(node.output_tensors, flatten(out)):
                        values[id(kt)] = v
            else:
                self._run_node(entry[1], values, training)
        outs = self._outputs_struct
        outputs = values[id(outs)] if isinstance(outs, KerasTensor) else map_structure(lambda t: values[id(t)], outs)
        # As Keras's Functional.call (unpack_singleton): a one-element list or tuple of outputs comes back as the
        # tensor itself, so Model(inputs=[x], outputs=[y]) (listing 8) calls and predicts one array; a symbolic call
        # keeps the list, as Keras's compute_output_spec does.
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1 and not isinstance(outputs[0], KerasTensor):
            return outputs[0]
        return outputs

    def compute_output_shape(self, input_shape):
        shapes_in = flatten_shapes(input_shape)
        shapes = {}
        for kt, s in zip(self.inputs, shapes_in):
            shapes[id(kt)] = tuple(s)
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            get = lambda t: shapes[id(t)] if isinstance(t, KerasTensor) else t  # noqa: E731
            arg_shapes = map_structure(get, node.args[0]) if node.args else None
            out = node.layer.compute_output_shape(arg_shapes)
            outs = [out] if isinstance(out, tuple) and all(d is None or isinstance(d, int) for d in out) else list(out)
            for kt, s in zip(node.output_tensors, outs):
                shapes[id(kt)] = tuple(s)
        res = [shapes[id(t)] for t in self.outputs]
        return res[0] if len(res) == 1 and not isinstance(self._outputs_struct, (list, tuple, dict)) else res

    def _summary_shape(self, layer):
        # Keras's format_layer_shape: the output shape(s) of the layer's last call.
        return super()._summary_shape(layer)

    def get_config(self):
        """Keras's functional config: name, trainable, one entry per layer of ``model.layers`` (Keras's serialized
        layer plus its name and the calls that belong to this model), input_layers and output_layers."""
        from fastnn.layers.serialization import serialize_layer

        node_ids = {id(n) for n in self._nodes}
        layer_configs = []
        for layer in self.operations:
            nodes = [n for n in layer._inbound_nodes if id(n) in node_ids]
            inbound = []
            for n in nodes:
                if isinstance(layer, InputLayer):
                    continue
                inbound.append({"args": _serialize_args(n.args, node_ids), "kwargs":
                                _serialize_args(n.kwargs, node_ids)})
            entry = serialize_layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = inbound
            layer_configs.append(entry)

        def ref(t):
            l, ni, ti = t._history
            # Keras counts the node a Functional model has from its own construction (inputs -> outputs) here, but
            # not inside inbound_nodes (serialize_node): a nested functional model's first call is node 1 here.
            offset = 1 if isinstance(l, Functional) else 0
            return [l.name, _model_node_index(l, ni, node_ids) + offset, ti]

        return {"name": self.name, "trainable": self.trainable, "layers": layer_configs,
                "input_layers": map_structure(ref, self._inputs_struct),
                "output_layers": map_structure(ref, self._outputs_struct)}

    def get_build_config(self):
        # A functional model is built by construction: Keras writes {"input_shape": None} unless build() ran.
        return {"input_shape": self._build_input_shape}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from fastnn.models.sequential import deserialize_layer

        created = {}
        outputs_by_node = {}
        for lc in config["layers"]:
            layer = deserialize_layer(lc, custom_objects)
            created[lc["name"]] = layer
            if isinstance(layer, InputLayer):
                outputs_by_node[(lc["name"], 0)] = [layer.output_tensor]
        # Replay the calls in order (layers are listed in execution order of first use).
        pending = [(lc["name"], i, node) for lc in config["layers"] for i, node in enumerate(lc["inbound_nodes"])]
        progress = True
        while pending and progress:
            progress = False
            rest = []
            for name, i, node in pending:
                try:
                    args = _deserialize_args(node["args"], outputs_by_node)
                    kwargs = _deserialize_args(node["kwargs"], outputs_by_node)
                except KeyError:
                    rest.append((name, i, node))
                    continue
                out = created[name](*args, **kwargs)
                outputs_by_node[(name, i)] = flatten(out)
                progress = True
            pending = rest
        if pending:
            raise ValueError(f"Functional.from_config: could not reconnect layers {[p[0] for p in pending]}")

        def get(r):
            name, node_index, tensor_index = r
            if isinstance(created.get(name), Functional) and node_index >= 1:
                node_index -= 1  # Keras's input/output_layers count a functional model's own first node
            outputs = outputs_by_node.get((name, node_index))
            if outputs is None or not -len(outputs) <= tensor_index < len(outputs):
                raise ValueError(f"Functional.from_config: the config refers to tensor {r!r}, which no layer of "
                                 f"the config produces (layers: {sorted(created)})")
            return outputs[tensor_index]

        inputs = _map_refs(get, config["input_layers"])
        outputs = _map_refs(get, config["output_layers"])
        return cls(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))


def flatten_shapes(s):
    if isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s):
        return [s]
    if isinstance(s, dict):
        return [tuple(v) for v in s.values()]
    return [tuple(x) for x in s]


def _model_node_index(layer, node_index, node_ids):
    """The index of the node among this layer's nodes that belong to the model."""
    nodes = [i for i, n in enumerate(layer._inbound_nodes) if id(n) in node_ids]
    return nodes.index(node_index) if node_index in nodes else 0


# NumPy boundary: a constant operand is written into the config as host data (nested lists).
def _serialize_args(structure, node_ids):
    """Call arguments as Keras's serialize_node writes them: each KerasTensor as {"class_name":
    "__keras_tensor__", "config": {shape, dtype, keras_history}} (tuples stay tuples, as in Keras)."""
    def f(t):
        if isinstance(t, KerasTensor):
            l, ni, ti = t._history
            return {"class_name": "__keras_tensor__", "config": {
                "shape": t.shape, "dtype": t.dtype, "keras_history": [l.name, _model_node_index(l, ni, node_ids), ti]}}
        if isinstance(t, (np.ndarray, Tensor)):  # a constant operand (x @ w): Keras's "__numpy__" / "__tensor__"
            a = np.asarray(t)
            kind = "__numpy__" if isinstance(t, np.ndarray) else "__tensor__"
            return {"class_name": kind, "config": {"value": a.tolist(), "dtype": str(a.dtype)}}
        if isinstance(t, np.generic):
            return t.item()
        return t

    return map_structure(f, structure)


# NumPy boundary: a constant operand comes back from the config as host data.
def _deserialize_args(structure, outputs_by_node):
    if isinstance(structure, dict) and structure.get("class_name") in ("__tensor__", "__numpy__"):
        return np.asarray(structure["config"]["value"], dtype=structure["config"]["dtype"])
    if isinstance(structure, dict) and structure.get("class_name") == "__keras_tensor__":
        name, ni, ti = structure["config"]["keras_history"]
        return outputs_by_node[(name, ni)][ti]
    if isinstance(structure, dict) and "__keras_tensor__" in structure:  # configs of older fastnn versions
        name, ni, ti = structure["__keras_tensor__"]
        return outputs_by_node[(name, ni)][ti]
    if isinstance(structure, (list, tuple)):
        return type(structure)(_deserialize_args(s, outputs_by_node) for s in structure)
    if isinstance(structure, dict):
        return {k: _deserialize_args(v, outputs_by_node) for k, v in structure.items()}
    return structure


def _map_refs(fn, refs):
    """The tensors of a config's input_layers / output_layers: [name, node_index, tensor_index] references, or
    lists / dicts of them. Anything else is a malformed config (ValueError)."""
    if isinstance(refs, dict):
        return {k: _map_refs(fn, v) for k, v in refs.items()}
    if isinstance(refs, list) and refs and isinstance(refs[0], str):
        if len(refs) != 3 or not all(isinstance(i, int) and not isinstance(i, bool) for i in refs[1:]):
            raise ValueError(f"Functional.from_config: a tensor reference must be [layer_name, node_index, "
                             f"tensor_index], but received {refs!r}")
        return fn(refs)
    if not isinstance(refs, list):
        raise ValueError(f"Functional.from_config: input_layers / output_layers must hold [layer_name, node_index, "
                         f"tensor_index] references, but received {refs!r}")
    return [_map_refs(fn, r) for r in refs]
