"""The index on disk: incremental updates, crash safety, model records and ANN consistency.

Uses the bundled multilingual-e5-small on the transformers path as a small real model.
"""

import pytest

from codesearch.ann import STAMP_FILE, exact_search
from codesearch.embedders.local import load_local
from codesearch.errors import IndexBusyError, ModelMismatchError
from codesearch.indexer import Indexer
from codesearch.paths import index_dir_for
from codesearch.search import Searcher
from codesearch.store import Store, WriteLock

FILES = {
    "util/text.py": 'def slugify(title):\n    """Turn a title into a URL slug."""\n'
                    '    return "-".join(title.lower().split())\n\n\n'
                    'def count_words(text):\n    """Count the words in a text."""\n    return len(text.split())\n',
    "util/mathx.py": 'def mean(values):\n    """Arithmetic mean of a list of numbers."""\n'
                     '    return sum(values) / len(values)\n',
    "scripts/deploy.sh": "#!/bin/sh\n# upload the build to the server\nrsync -a dist/ host:/srv/\n",
}


class CountingEmbedder:
    """Wraps a real Embedder and counts what it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.embedded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def document_job(self, texts):
        self.embedded += len(texts)
        return self.inner.document_job(texts)


@pytest.fixture(scope="module")
def e5(e5_spec):
    return load_local(e5_spec, "cpu")


def run_index(repo, e5, **kw):
    counter = CountingEmbedder(e5)
    report = Indexer(repo, index_dir_for(repo)).run(
        spec_for=lambda recorded: e5.spec, embedder_for=lambda spec, texts: counter, **kw)
    return report, counter.embedded


def units(repo):
    store = Store(index_dir_for(repo)).open()
    try:
        return {(p, q) for p, q in store.conn.execute("SELECT path, qualname FROM units")}
    finally:
        store.close()


def search(repo, e5, question, k=3, **kw):
    store = Store(index_dir_for(repo)).open()
    try:
        return [h.qualname for h in Searcher(store, embedder=e5).search(question, k, **kw)]
    finally:
        store.close()


def test_first_index_then_nothing_to_do(make_git_repo, e5):
    repo = make_git_repo(FILES)
    report, embedded = run_index(repo, e5)
    assert report.files == 3 and report.units == 4 and embedded == 4
    assert units(repo) == {("util/text.py", "slugify"), ("util/text.py", "count_words"),
                           ("util/mathx.py", "mean"), ("scripts/deploy.sh", "deploy.sh")}
    assert (repo / ".codesearch" / ".gitignore").exists()  # the index never shows up in git status
    report, embedded = run_index(repo, e5)
    assert report.files_parsed == 0 and embedded == 0


def test_edit_delete_rename_reembed_only_what_changed(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    text = (repo / "util/text.py").read_text()
    (repo / "util/text.py").write_text(text.replace("len(text.split())", "len(text.split()) + 0"))
    (repo / "util/mathx.py").unlink()
    (repo / "scripts/deploy.sh").rename(repo / "scripts/ship.sh")
    report, embedded = run_index(repo, e5)
    # count_words changed; slugify unchanged; ship.sh's text changed only in its path line
    assert embedded == 2
    assert report.files_removed == 2  # mathx.py and deploy.sh
    assert units(repo) == {("util/text.py", "slugify"), ("util/text.py", "count_words"),
                           ("scripts/ship.sh", "ship.sh")}
    assert "mean" not in search(repo, e5, "average of numbers", k=5)


def test_touch_without_change_reparses_nothing_embeds_nothing(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    p = repo / "util/text.py"
    p.write_text(p.read_text())
    report, embedded = run_index(repo, e5)
    assert embedded == 0 and report.files_parsed == 0


def test_crash_while_embedding_keeps_previous_index_and_vectors(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    (repo / "util/new.py").write_text('def reverse_list(xs):\n    """Reverse a list."""\n    return xs[::-1]\n')
    (repo / "util/mathx.py").write_text('def median(xs):\n    """Middle value."""\n    return sorted(xs)[len(xs)//2]\n')

    class Boom(CountingEmbedder):
        def document_job(self, texts):
            job = self.inner.document_job(texts)

            def explode(progress):
                raise KeyboardInterrupt
                yield
            job.run = explode
            return job

    with pytest.raises(KeyboardInterrupt):
        Indexer(repo, index_dir_for(repo)).run(spec_for=lambda r: e5.spec,
                                               embedder_for=lambda s, t: Boom(e5))
    assert ("util/mathx.py", "mean") in units(repo)  # old content still searchable
    assert "mean" in search(repo, e5, "arithmetic mean of numbers")
    report, _ = run_index(repo, e5)  # the next run completes the update
    assert ("util/new.py", "reverse_list") in units(repo) and ("util/mathx.py", "mean") not in units(repo)


def test_stale_ann_file_is_rebuilt_from_stored_vectors(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    (repo / ".codesearch" / STAMP_FILE).write_text('{"stamp": [0, 0], "dim": 384}')
    assert search(repo, e5, "make a url slug from a title")[0] == "slugify"


def test_model_mismatch_is_refused_and_rebuild_switches(make_git_repo, e5):
    import dataclasses

    repo = make_git_repo(FILES)
    run_index(repo, e5)
    other = dataclasses.replace(e5.spec, id="other-model", query_prompt="search: ")
    with pytest.raises(ModelMismatchError, match="--rebuild"):
        Indexer(repo, index_dir_for(repo)).run(spec_for=lambda r: other, embedder_for=lambda s, t: e5,
                                               model_requested=True)
    Indexer(repo, index_dir_for(repo)).run(spec_for=lambda r: other, embedder_for=lambda s, t: e5,
                                           model_requested=True, rebuild=True)
    store = Store(index_dir_for(repo)).open()
    assert store.get_meta("model")["id"] == "other-model"
    assert store.stats()["units"] == 4
    store.close()
    assert not (repo / ".codesearch" / "rebuild.tmp").exists()


def test_two_writers_never_write_at_once(make_git_repo, e5):
    repo = make_git_repo(FILES)
    lock = WriteLock(index_dir_for(repo))
    assert lock.acquire()
    try:
        with pytest.raises(IndexBusyError, match="pid"):
            run_index(repo, e5)
    finally:
        lock.release()
    run_index(repo, e5)


def test_filters_apply_before_top_k(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    assert search(repo, e5, "count words", k=1, langs=["bash"]) == ["deploy.sh"]
    assert search(repo, e5, "upload build", k=1, path_globs=["util/mathx.py"]) == ["mean"]
    assert search(repo, e5, "slug", k=5, path_globs=["util"], mode="lexical")[0] == "slugify"


def test_hnsw_top10_matches_exact_search(make_git_repo, e5):
    files = {f"m{i}.py": "".join(f'def f{i}_{j}(x):\n    """Step {j} of pipeline {i}: {w}."""\n    return x\n\n'
                                 for j, w in enumerate(["parse", "sort", "hash", "send", "retry", "cache"]))
             for i in range(40)}
    repo = make_git_repo(files)
    run_index(repo, e5)
    store = Store(index_dir_for(repo)).open()
    s = Searcher(store, embedder=e5)
    ids, mat = store.vectors_for_chunks()
    queries = e5.embed_queries(["sort items", "send a request", "compute hash", "retry on error", "x"])
    for q in queries:
        labels, _ = s.ann.search(q, 10)
        exact, _ = exact_search(mat, ids, q, 10)
        assert len(set(labels.tolist()) & set(exact.tolist())) >= 9
    store.close()


def test_rebuild_with_same_model_reuses_vectors(make_git_repo, e5):
    repo = make_git_repo(FILES)
    run_index(repo, e5)
    report, embedded = run_index(repo, e5, rebuild=True)
    assert embedded == 0 and report.units == 4
    assert search(repo, e5, "make a url slug from a title")[0] == "slugify"


def test_parallel_parsing_gives_the_same_units_as_serial(tmp_path):
    from codesearch.parsing import PARALLEL_PARSE_MIN, parse_files

    repo = tmp_path / "many"
    repo.mkdir()
    jobs = []
    for i in range(2 * PARALLEL_PARSE_MIN):
        (repo / f"m{i}.py").write_text(f"def f{i}(x):\n    '''Step {i}.'''\n    return x + {i}\n")
        jobs.append((f"m{i}.py", "python", None))
    (repo / "gone.py").write_text("x = 1\n")
    jobs.append(("gone.py", "python", None))
    (repo / "gone.py").unlink()

    def summary(results):
        return [(p, d, [(u.unit.qualname, u.unit.start_line, u.unit.end_line, u.hashes) for u in units or []], e)
                for p, d, units, e, _note, _capped in results]

    parallel = summary(parse_files(repo, jobs))
    assert parallel == summary(parse_files(repo, jobs, max_workers=1))
    assert parallel[-1][3].startswith("unreadable") and parallel[0][2][0][:3] == ("f0", 1, 3)


def test_noise_floor_is_remeasured_without_embedding_its_questions_again(make_git_repo, e5):
    """Every run that embeds something re-measures the noise floor (the index changed), from
    the null questions' vectors kept in the index: a hook's one-function update embeds that
    function and nothing else."""
    from codesearch.search import NULL_QUESTIONS, measure_noise_floor

    class QuestionCounter(CountingEmbedder):
        questions = 0

        def embed_queries(self, texts):
            QuestionCounter.questions += len(texts)
            return self.inner.embed_queries(texts)

    repo = make_git_repo(FILES)

    def index():
        counter = QuestionCounter(e5)
        Indexer(repo, index_dir_for(repo)).run(spec_for=lambda recorded: e5.spec,
                                               embedder_for=lambda spec, texts: counter)
        store = Store(index_dir_for(repo)).open()
        return store.get_meta("noise_floor"), Searcher(store, embedder=e5)

    floor, searcher = index()
    assert QuestionCounter.questions == len(NULL_QUESTIONS)
    assert floor == pytest.approx(measure_noise_floor(e5, searcher.ann), abs=1e-4)
    searcher.store.close()
    (repo / "util/mathx.py").write_text(FILES["util/mathx.py"] + '\n\ndef median(values):\n'
                                        '    """Middle value of a sorted list."""\n    return sorted(values)[len(values) // 2]\n')
    floor, searcher = index()
    assert QuestionCounter.questions == len(NULL_QUESTIONS)  # not embedded again
    assert floor == pytest.approx(measure_noise_floor(e5, searcher.ann), abs=1e-4)  # measured on the new graph
    searcher.store.close()
