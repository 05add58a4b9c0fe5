"""The typed intermediate representation: graph, dtypes, op set and builder."""
from .builder import GraphBuilder, Value
from .dtypes import DType, pack_bits, unpack_bits
from .graph import Graph, Op, Quant, Tensor
from .ops import Activation, Attr, OpType

__all__ = ["GraphBuilder", "Value", "DType", "pack_bits", "unpack_bits", "Graph", "Op", "Quant", "Tensor",
           "Activation", "Attr", "OpType"]
