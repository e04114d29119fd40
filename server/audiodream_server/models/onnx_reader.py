"""A minimal reader of ONNX files: the graph's nodes and constant tensors, no runtime.

An ONNX model is one protobuf message (`ModelProto`, onnx/onnx.proto). Its wire
format is a sequence of fields, each a key varint `(number << 3) | wire_type`
then a value: wire type 0 a varint, 1 eight bytes, 2 a length-prefixed byte
string (a nested message, a string, a packed repeated field), 5 four bytes.
This reads only what a port needs:

    ModelProto.graph (7) -> GraphProto
    GraphProto: node (1) NodeProto, initializer (5) TensorProto,
                input (11) / output (12) ValueInfoProto (name = 1)
    NodeProto: input (1), output (2), name (3), op_type (4), attribute (5)
    AttributeProto: name (1), f (2), i (3), s (4), t (5), floats (7), ints (8)
    TensorProto: dims (1), data_type (2), float_data (4), int32_data (5),
                 int64_data (7), name (8), raw_data (9), double_data (10)

so weights can be taken from a package's `.onnx` file without the `onnx` or
`onnxruntime` packages. Tensors come back as numpy arrays, little-endian as
ONNX stores them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TensorProto.DataType -> numpy dtype (the ones weights and shapes use).
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_,
          10: np.float16, 11: np.float64}


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """A protobuf base-128 varint at `pos` -> `(value, next position)`."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes):
    """Yields `(number, wire_type, value)` for each field of one message.

    Varints come as int, fixed-width values as their raw bytes, length-delimited
    values as bytes.
    """
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire: int, value) -> list[int]:
    """A repeated int64 field's values, packed (wire 2) or not (wire 0)."""
    if wire == 0:
        return [_signed64(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = varint(value, pos)
        out.append(_signed64(v))
    return out


def tensor(data: bytes) -> tuple[str, np.ndarray]:
    """Decodes a TensorProto into (name, array)."""
    name, dims, dtype, raw = "", [], 1, None
    floats: list[float] = []
    ints: list[int] = []
    doubles: list[float] = []
    for number, wire, value in fields(data):
        if number == 1:
            dims.extend(_ints(wire, value))
        elif number == 2:
            dtype = value
        elif number == 4:
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2
                          else struct.unpack("<f", value))
        elif number in (5, 7):
            ints.extend(_ints(wire, value))
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
        elif number == 10:
            doubles.extend(struct.unpack(f"<{len(value) // 8}d", value) if wire == 2
                           else struct.unpack("<d", value))
    if dtype not in DTYPES:
        raise ValueError(f"tensor {name!r}: unsupported ONNX data type {dtype}")
    np_type = np.dtype(DTYPES[dtype]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, dtype=np_type)
    elif floats:
        array = np.asarray(floats, dtype=np_type)
    elif doubles:
        array = np.asarray(doubles, dtype=np_type)
    else:
        array = np.asarray(ints, dtype=np_type)
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise ValueError(f"tensor {name!r}: {array.size} values for shape {dims}")
    return name, array.reshape(dims).astype(np_type.newbyteorder("="))


@dataclass
class Node:
    """One graph node: operator, inputs, outputs, attributes (name -> value)."""

    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict = field(default_factory=dict)


def _attribute(data: bytes) -> tuple[str, object]:
    name, value = "", None
    ints: list[int] = []
    floats: list[float] = []
    for number, wire, raw in fields(data):
        if number == 1:
            name = raw.decode()
        elif number == 2:
            value = struct.unpack("<f", raw)[0]
        elif number == 3:
            value = _signed64(raw)
        elif number == 4:
            value = bytes(raw)
        elif number == 5:
            value = tensor(raw)[1]
        elif number == 7:
            floats.extend(struct.unpack(f"<{len(raw) // 4}f", raw) if wire == 2
                          else struct.unpack("<f", raw))
        elif number == 8:
            ints.extend(_ints(wire, raw))
    if value is None:
        value = ints if ints else floats
    return name, value


def _node(data: bytes) -> Node:
    node = Node("", "", [], [])
    for number, _, value in fields(data):
        if number == 1:
            node.inputs.append(value.decode())
        elif number == 2:
            node.outputs.append(value.decode())
        elif number == 3:
            node.name = value.decode()
        elif number == 4:
            node.op_type = value.decode()
        elif number == 5:
            key, attr = _attribute(value)
            node.attributes[key] = attr
    return node


@dataclass
class Graph:
    """What a port needs of an ONNX graph.

    Attributes:
        nodes: in file (topological) order.
        tensors: initializers and `Constant` node outputs, by name.
        inputs, outputs: the graph's input and output names.
    """

    nodes: list[Node]
    tensors: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]

    def producer(self, name: str) -> Node | None:
        """The node whose output is `name`."""
        for node in self.nodes:
            if name in node.outputs:
                return node
        return None


def read(path: str | Path) -> Graph:
    """Reads an ONNX file's graph. Raises ValueError if it is not one."""
    data = Path(path).read_bytes()
    graph_bytes = None
    for number, wire, value in fields(data):
        if number == 7 and wire == 2:
            graph_bytes = value
    if graph_bytes is None:
        raise ValueError(f"{path}: no graph in this file (not an ONNX model?)")
    nodes, tensors, inputs, outputs = [], {}, [], []
    for number, _, value in fields(graph_bytes):
        if number == 1:
            node = _node(value)
            if node.op_type == "Constant" and "value" in node.attributes:
                tensors[node.outputs[0]] = node.attributes["value"]
            nodes.append(node)
        elif number == 5:
            name, array = tensor(value)
            tensors[name] = array
        elif number in (11, 12):
            name = next((v.decode() for n, _, v in fields(value) if n == 1), "")
            (inputs if number == 11 else outputs).append(name)
    return Graph(nodes, tensors, inputs, outputs)
