"""Probe: C/C++ definitions without a doc comment take the comment of their declaration
(a header's prototype, a method declared in its class), in the full-text doc column.

    python bench/probe_declared_docs.py DEV_REPOS/google+leveldb IDX_COPY/google+leveldb-<hash>
    python bench/devset_eval.py ... --index-root IDX_COPY --only-repo google/leveldb

Rewrites the full-text rows of a COPY of an index (never the index itself): every declaration
(`declaration` / `field_declaration` with a function declarator) with a comment directly above
it is qualified by its enclosing namespaces and classes as the extractor qualifies definitions,
and a definition of the same qualified name whose own doc is empty gets that comment added to
its doc column. Measured and dropped (docs/quality.md, "The second step, fourth session").
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch import c_family  # noqa: E402
from codesearch.extract import _leading_comment, _text, parse  # noqa: E402
from codesearch.languages import LANGUAGES  # noqa: E402
from codesearch.text import cjk_bigrams  # noqa: E402

SCOPES = {"namespace_definition", "class_specifier", "struct_specifier"}
CONTAINERS = {"declaration_list", "template_declaration", "field_declaration_list", "linkage_specification",
              "preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif"}


def declared_name(declarator, source: bytes) -> str | None:
    while declarator is not None and declarator.type in ("pointer_declarator", "reference_declarator"):
        declarator = declarator.child_by_field_name("declarator") or (
            declarator.named_children[-1] if declarator.named_children else None)
    if declarator is None or declarator.type != "function_declarator":
        return None
    name = declarator.child_by_field_name("declarator")
    return _text(name, source) if name is not None else None


def declared_docs(repo: Path) -> dict[str, str]:
    lang = LANGUAGES["cpp"]
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        if path.suffix not in (".h", ".hh", ".hpp", ".cc", ".cpp") or not path.is_file():
            continue
        source = path.read_bytes()
        tree, source = c_family.best_parse(parse(source, "cpp"), source, "cpp", parse)

        def walk(node, qual):
            for child in node.children:
                if child.type in SCOPES:
                    name, body = child.child_by_field_name("name"), child.child_by_field_name("body")
                    if body is not None:
                        walk(body, qual + ([_text(name, source)] if name is not None else []))
                elif child.type in ("declaration", "field_declaration"):
                    name = declared_name(child.child_by_field_name("declarator"), source)
                    doc = _leading_comment(child, lang, source) if name else ""
                    if doc:
                        out.setdefault(".".join(qual + name.replace("::", ".").split(".")), doc)
                elif child.type in CONTAINERS:
                    walk(child, qual)

        walk(tree.root_node, [])
    return out


def main() -> int:
    repo, index = Path(sys.argv[1]), Path(sys.argv[2])
    docs = declared_docs(repo)
    db = sqlite3.connect(index / "index.db")
    rows = db.execute("SELECT id, qualname FROM units WHERE language IN ('c', 'cpp') AND doc = ''").fetchall()
    changed = 0
    for uid, qualname in rows:
        if qualname in docs:
            (current,) = db.execute("SELECT doc FROM units_fts WHERE rowid = ?", (uid,)).fetchone()
            db.execute("UPDATE units_fts SET doc = ? WHERE rowid = ?", (current + "\n" + cjk_bigrams(docs[qualname]), uid))
            changed += 1
    db.commit()
    print(f"{len(docs)} declarations with a comment; {changed} of {len(rows)} undocumented C/C++ definitions took one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
