"""Ranking: fusion arithmetic, secondary-code demotion, one hit per function, exact identifiers."""

import pytest

from codesearch.embedders.local import load_local
from codesearch.indexer import Indexer
from codesearch.paths import index_dir_for
from codesearch.question import lexical_terms, plan_question
from codesearch.ranking import (Calibration, RankWeights, calibrate, convex, demote, doc_sentence_match, fuse,
                                is_accessor, is_constructor, is_secondary_path, is_secondary_unit, rrf,
                                spread_files)
from codesearch.search import Searcher
from codesearch.store import Store


def test_rrf_rewards_agreement():
    fused = rrf([[1, 2, 3], [3, 1, 4]], [1.0, 1.0], k=60)
    assert max(fused, key=fused.get) == 1
    assert fused[4] < fused[2] < fused[3]


def test_convex_normalises_each_list_and_weighs_it():
    fused = convex([[(1, 0.9), (2, 0.5)], [(2, 30.0), (1, 10.0)]], [1.0, 0.5])
    assert fused[1] == pytest.approx(1.0) and fused[2] == pytest.approx(0.5)
    assert convex([[(7, 0.3)]], [1.0])[7] == 0.0  # a single score has no spread: no credit


SEM = [[(1, 0.93), (2, 0.86), (3, 0.80), (4, 0.70)]]
LEX = [(3, 40.0), (1, 12.0), (2, 0.0), (4, 0.0)]


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
def test_calibration_keeps_the_order_and_maps_every_mode_to_0_1(mode):
    ranked = fuse(SEM, LEX, mode, False) if mode != "lexical" else LEX
    out = calibrate(ranked, SEM if mode != "lexical" else [], LEX if mode != "semantic" else [], mode,
                    Calibration(floor=0.81))
    assert [u for u, _ in out] == [u for u, _ in ranked]  # never reorders
    scores = [s for _, s in out]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)


def test_calibration_is_absolute_where_fusion_is_relative():
    """Min-max fusion gives the best of a bad lot 1.0; calibration gives it what its cosine is worth."""
    weak = [[(1, 0.79), (2, 0.78), (3, 0.70)]]
    fused = fuse(weak, [(1, 0.0), (2, 0.0), (3, 0.0)], "hybrid", False)
    w = RankWeights()
    assert fused[0][1] == pytest.approx(w.semantic / (w.semantic + w.lexical))  # the top of its list, whatever its cosine
    cal = calibrate(fused, weak, [], "hybrid", Calibration(floor=0.81))
    assert cal[0][1] < 0.2
    # the same cosine scores higher where this model's "nothing" sits lower (another model, another index)
    assert calibrate(fused, weak, [], "semantic", Calibration(floor=0.60))[0][1] == 1.0
    # BM25 saturates: lexical_half is 0.5, a large score approaches 1, no match is 0
    lex = calibrate([(1, 8.0), (2, 0.0)], [], [(1, 8.0), (2, 0.0)], "lexical")
    assert lex == [(1, pytest.approx(0.5)), (2, 0.0)]


def test_search_scores_are_calibrated_and_ordered(searcher):
    for mode in ("hybrid", "semantic", "lexical"):
        hits = searcher.search("sliding window average", k=4, mode=mode)
        scores = [h.score for h in hits]
        assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True), (mode, scores)
    assert 0.7 < searcher.noise_floor() < 0.9  # e5-small's cosine for questions no code answers


@pytest.mark.parametrize("path,secondary", [
    ("src/app/main.py", False), ("tests/test_main.py", True), ("pkg/server_test.go", True),
    ("src/test/java/FooTest.java", True), ("web/button.spec.tsx", True), ("vendor/lib/x.go", True),
    ("third_party/zlib/inflate.c", True), ("static/app.min.js", True), ("api/v1/types.pb.go", True),
    ("Src/Lib.Tests/ParserTests.cs", True), ("docs/examples/demo.py", True), ("lib/testing_utils.py", False),
    ("test.c", True), ("src/tests.rs", True), ("conftest.py", True), ("lib/parser_spec.rb", True),
    ("src/contest.py", False), ("lib/attest.rb", False), ("src/latest.c", False), ("spectrum.go", False),
])
def test_secondary_paths(path, secondary):
    assert is_secondary_path(path) is secondary


@pytest.mark.parametrize("path,language,qualname,secondary", [
    ("src/lib.rs", "rust", "tests.test_level_from_str", True),  # #[cfg(test)] mod tests in the file
    ("src/kv/value.rs", "rust", "inner.tests.to_f64", True),
    ("src/lib.rs", "rust", "Level.from_str", False),
    ("src/tests.rs", "rust", "parse", True),  # by its path
    ("src/lib.rs", "rust", "tests", False),  # a function named tests is not inside one
    ("app/tests.py", "python", "run", True),
    ("app/runner.py", "python", "tests.run", False),  # only Rust keeps tests in a module of the file
])
def test_secondary_units(path, language, qualname, secondary):
    assert is_secondary_unit(path, language, qualname) is secondary


def test_lexical_terms_split_identifiers_and_drop_stopwords():
    assert lexical_terms("how to parseConfig for the HTTPServer") == [
        "parseconfig", "parse", "config", "httpserver", "http", "server"]


LONG_BODY = "\n".join(f"    total += step_{i}(values)" for i in range(200))
FILES = {
    "src/stats.py": 'def moving_average(values, window):\n    """Average over a sliding window."""\n'
                    '    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]\n',
    "tests/test_stats.py": 'def moving_average(values, window):\n    """Average over a sliding window."""\n'
                           '    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]\n',
    "src/pipeline.py": f'def run_pipeline(values):\n    """Run every step of the pipeline."""\n    total = 0\n{LONG_BODY}\n'
                       '    return total\n',
    "src/shapes.py": 'class Circle:\n    def __init__(self, radius):\n        """A circle of the given radius."""\n'
                     '        self.radius = radius\n\n    def area(self):\n        """The area of the circle."""\n'
                     '        return 3.14159 * self.radius ** 2\n',
    "src/colors.py": 'RED = "#ff0000"\nGREEN = "#00ff00"\nBLUE = "#0000ff"  # the primary colours of a screen\n',
    "src/records.py": 'def add_record(message):\n    """Adds a log record.\n\n    Every handler sees it."""\n'
                      '    HANDLERS.append(message)\n\n\n'
                      'def alert(message):\n    """Adds a log record at the ALERT level."""\n    add_record("ALERT " + message)\n',
    "src/Settings.cs": "public class Settings\n{\n    private int _retries;\n\n"
                       "    /// <summary>How many times a failed request is retried.</summary>\n"
                       "    public int Retries\n    {\n        get { return _retries; }\n"
                       "        set { _retries = value; }\n    }\n}\n",
    "src/maps.py": 'def merge_maps(first, second):\n    out = dict(first)\n    out.update(second)\n    return out\n',
    "src/config.py": 'def parseConfig(text):\n    return dict(line.split("=", 1) for line in text.splitlines())\n\n\n'
                     'def load_settings(path):\n    """Read the settings file of the application."""\n'
                     '    return open(path).read()\n',
}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory, e5_spec):
    import subprocess

    repo = tmp_path_factory.mktemp("rank")
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    embedder = load_local(e5_spec, "cpu")
    Indexer(repo, index_dir_for(repo)).run(spec_for=lambda r: embedder.spec, embedder_for=lambda s, t: embedder)
    store = Store(index_dir_for(repo)).open()
    yield Searcher(store, embedder=embedder)
    store.close()


def test_source_ranks_above_an_identical_test(searcher):
    hits = searcher.search("sliding window average", k=2)
    assert [h.path for h in hits] == ["src/stats.py", "tests/test_stats.py"]  # demoted, not hidden
    plain = {h.path: h.why["fused"] for h in searcher.search("sliding window average", k=2,
                                                             weights=RankWeights(secondary=1.0))}
    assert hits[1].why["fused"] == pytest.approx(RankWeights().secondary * plain["tests/test_stats.py"])
    assert abs(plain["tests/test_stats.py"] - plain["src/stats.py"]) < 0.05  # equal relevance


@pytest.mark.parametrize("language,name,qualname,expected", [
    ("python", "__init__", "Circle.__init__", True), ("php", "__construct", "Logger.__construct", True),
    ("java", "Element", "org.jsoup.Element.Element", True), ("csharp", "JsonReader", "JsonReader.JsonReader", True),
    ("cpp", "LRUCache", "leveldb.LRUCache.LRUCache", True), ("rust", "new", "Url.new", True),
    ("javascript", "constructor", "CancelToken.constructor", True), ("java", "parse", "Parser.parse", False),
    ("cpp", "Insert", "leveldb.LRUCache.Insert", False), ("python", "area", "Circle.area", False),
])
def test_constructors_are_recognised_by_language(language, name, qualname, expected):
    assert is_constructor(language, name, qualname) is expected


def test_demote_scales_only_the_given_units_and_resorts():
    ranked = [(1, 1.0), (2, 0.9), (3, 0.5)]
    assert demote(ranked, {1}, 0.85) == [(2, 0.9), (1, 0.85), (3, 0.5)]
    assert demote(ranked, {1}, 1.0) is ranked  # factor 1: untouched


def test_constructors_whole_file_units_and_properties_are_demoted(searcher):
    """A constructor, a file without functions and a C# property rank below what the factors
    say, never vanish."""
    plain = RankWeights(constructor=1.0, file_unit=1.0, accessor=1.0)
    for question, qualname, factor in (("a circle of the given radius", "Circle.__init__", RankWeights().constructor),
                                       ("primary colours of a screen", "colors.py", RankWeights().file_unit),
                                       ("how many times a failed request is retried", "Settings.Retries",
                                        RankWeights().accessor)):
        fused = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8)}
        base = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8, weights=plain)}
        assert qualname in fused and fused[qualname] == pytest.approx(factor * base[qualname]), (question, fused)
    assert RankWeights().constructor < 1.0 and RankWeights().file_unit < 1.0 and RankWeights().accessor < 1.0


@pytest.mark.parametrize("language,kind,signature,expected", [
    ("csharp", "method", "public ReferenceLoopHandling ReferenceLoopHandling", True),
    ("csharp", "method", "public JToken this[object key]", True),
    ("csharp", "method", "public void Merge(object content, JsonMergeSettings? settings)", False),
    ("csharp", "function", "int Local(int x)", False), ("java", "method", "public int size()", False),
    ("csharp", "file", "", False),
])
def test_properties_are_recognised_by_their_signature(language, kind, signature, expected):
    assert is_accessor(language, kind, signature) is expected


def test_spread_files_makes_room_after_the_first_units_of_a_crowded_file():
    file_of = {1: "a.php", 2: "a.php", 3: "a.php", 4: "b.php", 5: "a.php"}
    ranked = [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7), (5, 0.6)]
    assert spread_files(ranked, file_of, 2, 0.5) == [(1, 1.0), (2, 0.9), (4, 0.7), (3, 0.4), (5, 0.3)]
    assert spread_files(ranked, file_of, 0, 0.5) is ranked and spread_files(ranked, file_of, 2, 1.0) is ranked
    assert spread_files(ranked, {}, 1, 0.5) == ranked  # a unit without a known file is left alone


def test_search_spreads_a_crowded_file(searcher):
    """Wired into Searcher.rank: the second unit of a file, with per_file 1, gets `crowd` times
    its score; the first keeps its own. The default limit is above what one class's two or
    three best methods need."""
    question = "adds a log record"
    plain = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8, weights=RankWeights(per_file=0))}
    spread = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8,
                                                                 weights=RankWeights(per_file=1, crowd=0.5))}
    first, second = sorted(("add_record", "alert"), key=lambda q: -plain[q])
    assert spread[first] == pytest.approx(plain[first]) and spread[second] == pytest.approx(0.5 * plain[second])
    assert RankWeights().per_file >= 3 and RankWeights().crowd < 1.0


def test_long_function_is_split_but_found_once(searcher):
    n_pieces = searcher.store.conn.execute(
        "SELECT COUNT(*) FROM chunks c JOIN units u ON u.id = c.unit_id WHERE u.name = 'run_pipeline'").fetchone()[0]
    assert n_pieces > 2
    hits = searcher.search("run every pipeline step and add up the totals", k=5)
    assert [h.qualname for h in hits].count("run_pipeline") == 1


def test_exact_identifier_wins(searcher):
    assert searcher.search("parseConfig", k=1)[0].name == "parseConfig"
    assert searcher.search("parseConfig", k=1, mode="lexical")[0].name == "parseConfig"


def test_one_bm25_pass_gives_what_the_two_queries_gave(searcher):
    """Store.lexical_all (one MATCH, every score) agrees with the top-n search, and the hybrid
    completion gives a candidate no term matches a BM25 of 0."""
    store = searcher.store
    for question in ("sliding window average", "read the settings file", "parse config text"):
        terms = lexical_terms(question)
        every = store.lexical_all(terms)
        top = store.lexical_search(terms, 5)
        assert top and [u for u, _ in top] == [u for u, _ in sorted(every.items(), key=lambda x: -x[1])][:5]
        assert all(every[u] == pytest.approx(s) for u, s in top)
    plan = searcher.plan("sliding window average")
    sem, lex = searcher.candidates(plan, 20, "hybrid", None)
    every = store.lexical_all(plan.terms)
    assert {u: s for u, s in lex} == pytest.approx({u: every.get(u, 0.0) for u, _ in lex})
    assert any(u not in every for u, _ in lex)  # semantic-only candidates are scored 0, not dropped


@pytest.mark.parametrize("question,doc,expected", [
    ("Adds a log record.", "Adds a log record.\n\n@param int $level", 1.0),  # the sentence itself
    ("Adds a log record.", "Adds a log record at the ALERT level.", 0.5),  # half of a sentence twice as long
    ("adds a LOG record", "Adds a log record.", 1.0),  # case and punctuation do not matter
    ("Convert Punycode to an Unicode `String`.", "Convert an Unicode `str` to Punycode.", 0.0),  # same words, no run
    ("pick an encoder based on the client's header", "Picks the best encoder based on the request.", 0.0),
    ("log record", "Adds a log record.", 0.0),  # too short to be a restatement
    ("Adds a log record.", "", 0.0),
    ("解析配置文件并返回字典", "解析配置文件并返回字典。", 1.0),  # Chinese doc comments: one token per character
])
def test_doc_sentence_match(question, doc, expected):
    assert doc_sentence_match(question, doc) == pytest.approx(expected)


def test_a_restated_doc_sentence_gets_its_credit(searcher):
    """Its own sentence lifts add_record by the full weight, the neighbour that shares half of
    its sentence by half of it; the neighbour no longer ties it."""
    question = "Adds a log record."
    with_credit = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8)}
    without = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8, weights=RankWeights(doc_sentence=0))}
    w = RankWeights().doc_sentence
    assert w > 0
    assert with_credit["add_record"] == pytest.approx(without["add_record"] + w)
    assert with_credit["alert"] == pytest.approx(without["alert"] + 0.5 * w)
    assert searcher.search(question, k=1)[0].qualname == "add_record"
    # lexical mode ranks by raw BM25: the credit is the same share of its best score
    lex = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8, mode="lexical")}
    lex0 = {h.qualname: h.why["fused"] for h in searcher.search(question, k=8, mode="lexical",
                                                                 weights=RankWeights(doc_sentence=0))}
    best = max(lex0.values())
    assert lex["add_record"] == pytest.approx(lex0["add_record"] + w * best)
    assert lex["alert"] == pytest.approx(lex0["alert"] + 0.5 * w * best)
    # a paraphrase shares no run of words with any doc comment: no credit anywhere
    para = {h.qualname: h.why["fused"] for h in searcher.search("average of a moving window", k=8)}
    plain = {h.qualname: h.why["fused"] for h in searcher.search("average of a moving window", k=8,
                                                                  weights=RankWeights(doc_sentence=0))}
    assert para == pytest.approx(plain)


def test_synonyms_are_expansions_not_terms():
    plan = plan_question("combine the defaults with the options")
    assert "merge" in plan.expansions and "config" in plan.expansions
    assert "combine" in plan.terms and "combine" not in plan.expansions and "merge" not in plan.terms
    assert plan_question("merging two lists").expansions[:3] == ["combine", "join", "concat"]  # "merging" -> merge
    assert plan_question("combine the defaults", expand=False).expansions == []
    assert "combine" in plan_question("合并两个字典").expansions  # through the English rendering ("merge")


def test_a_synonym_finds_code_that_shares_no_word_with_the_question(searcher):
    question = "combine two dictionaries"
    found = [h.qualname for h in searcher.search(question, k=5, mode="lexical")]
    assert found and found[0] == "merge_maps"
    plain = Searcher(searcher.store, embedder=searcher.embedder, expand=False)
    assert "merge_maps" not in [h.qualname for h in plain.search(question, k=5, mode="lexical")]
    # a synonym's BM25 counts for EXPANSION_WEIGHT of the question's own words
    plan = searcher.plan(question)
    own = searcher.store.lexical_all(plan.terms)
    uid = next(u for u, s in searcher.lexical_scores(plan).items() if u not in own)
    assert searcher.lexical_scores(plan)[uid] == pytest.approx(
        searcher.expansion_weight * searcher.store.lexical_all(plan.expansions)[uid])


OVERLAP_QUESTIONS = ["sliding window average", "combine two dictionaries", "read the settings file",
                     "area of a circle", "合并两个字典", "Adds a log record."]


def test_the_full_text_query_beside_the_embedding_changes_no_answer(searcher):
    """Hybrid search runs the FTS5 query in a second thread while the question is embedded
    (Searcher.candidates): the same hits with the same scores as one after the other, and the
    query did run in that thread."""
    import threading

    serial = Searcher(searcher.store, embedder=searcher.embedder)
    serial.overlap = False
    beside = Searcher(searcher.store, embedder=searcher.embedder)
    assert beside.overlap  # this Python's SQLite is serialized
    threads = []
    own = beside.lexical_scores

    def recorded(plan):
        threads.append(threading.current_thread().name)
        return own(plan)

    beside.lexical_scores = recorded
    for question in OVERLAP_QUESTIONS:
        a = [(h.unit_id, h.score) for h in serial.search(question, k=5)]
        b = [(h.unit_id, h.score) for h in beside.search(question, k=5)]
        assert a == b and a, question
    assert threads == ["codesearch-full-text"] * len(OVERLAP_QUESTIONS)


def test_an_error_in_the_full_text_thread_reaches_the_caller(searcher):
    from codesearch.errors import CorruptIndexError

    beside = Searcher(searcher.store, embedder=searcher.embedder)

    def broken(plan):
        raise CorruptIndexError("database disk image is malformed")

    beside.lexical_scores = broken
    with pytest.raises(CorruptIndexError, match="malformed"):
        beside.search("sliding window average", k=5)
    assert [h.qualname for h in beside.search("sliding window average", k=1, mode="semantic")]


def test_a_failed_embedding_waits_for_the_full_text_query(searcher):
    """The embedding fails (a dead server) while the full-text query runs: the error reaches
    the caller only once the query has ended, so the connection is free for whoever handles it."""
    import threading
    import time

    from codesearch.errors import EndpointError

    ended = threading.Event()
    beside = Searcher(searcher.store, embedder=searcher.embedder)
    own = beside.lexical_scores

    def slow(plan):
        time.sleep(0.3)
        out = own(plan)
        ended.set()
        return out

    class DeadServer:
        spec, dim = searcher.embedder.spec, searcher.embedder.dim
        query_tokens = searcher.embedder.query_tokens

        def embed_queries(self, texts):
            raise EndpointError("the embedding server at http://127.0.0.1:9/v1 did not answer")

    beside.lexical_scores = slow
    beside._embedder = DeadServer()
    with pytest.raises(EndpointError):
        beside.search("sliding window average", k=5)
    assert ended.is_set()
