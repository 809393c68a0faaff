"""ONNX Runtime session wrapper: providers and thread counts from settings, and batched runs.

The shared models were exported with a fixed batch of 1. When the graph allows it the batch
dimension is made dynamic (input/output dims renamed, and Reshape targets that hard-code the
batch as 1 changed to 0, "copy this dim"), then the rewritten graph is checked against item-by-
item runs of the original; if anything differs the batch is run item by item instead, and
:attr:`OnnxSession.batching` says which happened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

Batching = Literal["native", "rewritten", "per-item"]


def pick_providers(wanted: Sequence[str]) -> list[str]:
    """The wanted providers that this onnxruntime build has, in order, CPU always last."""
    available = ort.get_available_providers()
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    missing = [p for p in wanted if p not in available]
    if missing:
        log.info("onnxruntime providers not available here, skipped: %s", ", ".join(missing))
    return [*chosen, "CPUExecutionProvider"]


def provider_options(providers: Sequence[str], intra_threads: int) -> list[dict[str, str]]:
    """Options per provider. OpenVINO runs its own thread pool, sized by ``num_of_threads`` and
    not by the session's intra-op count (left alone it takes every core): it gets the same number."""
    return [{"num_of_threads": str(intra_threads)} if p == "OpenVINOExecutionProvider" else {} for p in providers]


def _options(intra_threads: int, inter_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_threads
    so.inter_op_num_threads = inter_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # the shared exports warn about initializers listed as inputs
    # idle worker threads sleep instead of spinning: cores are shared with decoding and other processes
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def dynamic_batch_bytes(path: Path) -> bytes | None:
    """The model with a symbolic batch dim, or None when the graph cannot be rewritten safely."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # pragma: no cover - onnx is a dependency; keep working without it
        return None
    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            return None
        src = node.input[1]
        if src in inits:
            t = inits[src]
        elif src in consts and consts[src].attribute and consts[src].attribute[0].name == "value":
            t = consts[src].attribute[0].t
        else:
            return None  # a computed shape: cannot tell whether it carries the batch
        shape = numpy_helper.to_array(t).copy()
        if shape.size and shape[0] == 1:
            shape[0] = 0
            t.CopyFrom(numpy_helper.from_array(shape, t.name))
    for v in [*g.input, *g.output]:
        if v.name in inits:
            continue
        dims = v.type.tensor_type.shape.dim
        if not dims:
            return None
        dims[0].dim_param = "batch"
    del g.value_info[:]  # stale fixed-batch shapes; onnxruntime infers them again
    return model.SerializeToString()


class OnnxSession:
    """One ONNX Runtime session; :meth:`run` takes a batch of any size."""

    def __init__(self, path: Path, *, providers: Sequence[str] = ("CPUExecutionProvider",),
                 intra_threads: int = 1, inter_threads: int = 1, max_batch: int = 16) -> None:
        self.path = path
        self.providers = pick_providers(providers)
        self.max_batch = max_batch
        self.provider_options = provider_options(self.providers, intra_threads)
        opts = _options(intra_threads, inter_threads)
        self._session = ort.InferenceSession(str(path), opts, providers=self.providers,
                                             provider_options=self.provider_options)
        inp = self._session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape = list(inp.shape)
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.output_shapes = {o.name: list(o.shape) for o in self._session.get_outputs()}
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.batching: Batching = "per-item"
        if not isinstance(self.input_shape[0], int) or self.input_shape[0] <= 0:
            self.batching = "native"
        elif self.input_shape[0] == 1 and max_batch > 1:
            self._try_dynamic(opts)

    @property
    def active_providers(self) -> list[str]:
        """The providers the session runs on, as onnxruntime reports them (``get_providers()``)."""
        return list(self._session.get_providers())

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (w, h)."""
        return int(self.input_shape[3]), int(self.input_shape[2])

    def _try_dynamic(self, opts: ort.SessionOptions) -> None:
        data = dynamic_batch_bytes(self.path)
        if data is None:
            return
        try:
            batched = ort.InferenceSession(data, opts, providers=self.providers, provider_options=self.provider_options)
        except Exception as exc:  # noqa: BLE001 - any failure means: keep the original
            log.info("%s: dynamic batch rejected by onnxruntime (%s); running item by item", self.path.name, exc)
            return
        # verify: a batch of 2 distinct inputs must give what two single runs give
        rng = np.random.default_rng(0)
        shape = [2, *[int(d) for d in self.input_shape[1:]]]
        x = rng.uniform(0, 255, shape).astype(np.float32)
        try:
            got = batched.run(None, {self.input_name: x})
        except Exception as exc:  # noqa: BLE001
            log.info("%s: dynamic batch failed (%s); running item by item", self.path.name, exc)
            return
        for i in range(2):
            want = self._session.run(None, {self.input_name: x[i:i + 1]})
            for g, w in zip(got, want, strict=True):
                if g.shape[0] != 2 or g.shape[1:] != w.shape[1:] or not np.allclose(g[i], w[0], rtol=1e-3, atol=1e-3):
                    log.info("%s: batched outputs differ from single runs; running item by item", self.path.name)
                    return
        self._session, self.batching = batched, "rewritten"

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name for a batch [B, C, H, W]; chunks of ``max_batch``, or one by one."""
        step = 1 if self.batching == "per-item" else self.max_batch
        parts = [self._session.run(None, {self.input_name: batch[i:i + step]}) for i in range(0, len(batch), step)]
        if len(parts) == 1:
            return dict(zip(self.output_names, parts[0], strict=True))
        return {n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(self.output_names)}
