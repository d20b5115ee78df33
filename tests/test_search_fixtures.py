"""Search quality on our own fixtures with the offline model (multilingual-e5-small).

Every question in tests/questions/*.jsonl names the function that answers it; English
and Chinese questions must each put it in the top 3 for at least 90% of the questions.
"""

import json
from pathlib import Path

import pytest

from codesearch.app import Query, SearchSession, index_repository, open_workspace

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [json.loads(line) for p in sorted((ROOT / "tests" / "questions").glob("*.jsonl"))
             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def fixture_searcher(tmp_path_factory, e5_spec):
    """The fixtures indexed and searched through the application layer, as the CLI does."""
    ws = open_workspace(ROOT / "fixtures", index_dir=str(tmp_path_factory.mktemp("fixture-index")),
                        model="e5-small")
    index_repository(ws)
    session = SearchSession(ws)
    session.refresh()
    yield session
    session.close()


def _rank(session, question, q):
    hits = session.search(Query(question, k=10))
    for i, h in enumerate(hits):
        if h.path == q["path"] and h.qualname == q["qualname"]:
            return i + 1
    return None


def test_there_are_enough_questions():
    assert len(QUESTIONS) >= 40
    assert all(q["en"] and q["zh"] for q in QUESTIONS)


@pytest.mark.parametrize("field", ["en", "zh"])
def test_top3_hit_rate(fixture_searcher, field):
    ranks = {q[field]: _rank(fixture_searcher, q[field], q) for q in QUESTIONS}
    misses = {k: v for k, v in ranks.items() if v is None or v > 3}
    rate = 1 - len(misses) / len(ranks)
    print(f"\n{field}: top-3 hit rate {rate:.3f} over {len(ranks)} questions; misses: {misses}")
    assert rate >= 0.9, misses


def test_every_fixture_question_target_exists(fixture_searcher):
    conn = fixture_searcher.store.conn
    known = set(conn.execute("SELECT path, qualname FROM units"))  # a test may read the tables
    missing = [(q["path"], q["qualname"]) for q in QUESTIONS if (q["path"], q["qualname"]) not in known]
    assert not missing
