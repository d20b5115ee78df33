"""Ranking: fusion arithmetic, secondary-code demotion, one hit per function, exact identifiers."""

import pytest

from codesearch.embedders.local import load_local
from codesearch.indexer import Indexer
from codesearch.paths import index_dir_for
from codesearch.question import lexical_terms
from codesearch.ranking import RankWeights, convex, is_secondary_path, rrf
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


@pytest.mark.parametrize("path,secondary", [
    ("src/app/main.py", False), ("tests/test_main.py", True), ("pkg/server_test.go", True),
    ("src/test/java/FooTest.java", True), ("web/button.spec.tsx", True), ("vendor/lib/x.go", True),
    ("third_party/zlib/inflate.c", True), ("static/app.min.js", True), ("api/v1/types.pb.go", True),
    ("Src/Lib.Tests/ParserTests.cs", True), ("docs/examples/demo.py", True), ("lib/testing_utils.py", False),
])
def test_secondary_paths(path, secondary):
    assert is_secondary_path(path) is secondary


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
    plain = {h.path: h.score for h in searcher.search("sliding window average", k=2,
                                                      weights=RankWeights(secondary=1.0))}
    assert hits[1].score == pytest.approx(0.8 * plain["tests/test_stats.py"])
    assert abs(plain["tests/test_stats.py"] - plain["src/stats.py"]) < 0.05  # equal relevance


def test_long_function_is_split_but_found_once(searcher):
    n_pieces = searcher.store.conn.execute(
        "SELECT COUNT(*) FROM chunks c JOIN units u ON u.id = c.unit_id WHERE u.name = 'run_pipeline'").fetchone()[0]
    assert n_pieces > 2
    hits = searcher.search("run every pipeline step and add up the totals", k=5)
    assert [h.qualname for h in hits].count("run_pipeline") == 1


def test_exact_identifier_wins(searcher):
    assert searcher.search("parseConfig", k=1)[0].name == "parseConfig"
    assert searcher.search("parseConfig", k=1, mode="lexical")[0].name == "parseConfig"
