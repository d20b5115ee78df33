"""`codesearch index` with the class summaries of methods (extract.Unit.owner_doc) placed
otherwise than the release places them, to measure where they help (docs/quality.md, "The
second step, fourth session"):

    python bench/owner_doc_variants.py VARIANT index DEV_REPOS/owner+name --model e5-small --index-dir IDX -q

VARIANT:
  embedded       also in the embedded text (chunking.header), as well as the full-text doc column
  embedded-only  in the embedded text, not in the full-text index
  embedded-undocumented  also in the embedded text of methods without a doc comment of their own
  path-column    in the full-text path column instead of the doc column
  undocumented-only  in the doc column only of methods without a doc comment of their own
  none           nowhere (the C# #if repair alone)

The extractor version gets the variant as a suffix, so an index made by the release (or by
another variant) is extracted again; pieces whose text did not change are not embedded again.
Spawned parse workers import this file again as __mp_main__ and find the variant in the
environment (OWNER_DOC_VARIANT), so the patch reaches them too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch import chunking, extract, indexer  # noqa: E402
from codesearch.text import cjk_bigrams  # noqa: E402

VARIANTS = ("embedded", "embedded-only", "embedded-undocumented", "path-column", "undocumented-only", "none")


def without_owner(fn):
    """`fn(unit)` computed as if the unit had no class summary."""
    def call(unit):
        saved, unit.owner_doc = unit.owner_doc, ""
        try:
            return fn(unit)
        finally:
            unit.owner_doc = saved
    return call


def patch(variant: str) -> None:
    indexer.EXTRACTOR_VERSION = f"{indexer.EXTRACTOR_VERSION}-{variant}"
    release_header, release_fields = chunking.header, chunking.lexical_fields
    if variant in ("embedded", "embedded-only", "embedded-undocumented"):
        def header(unit):
            head = release_header(unit)
            if not unit.owner_doc or (variant == "embedded-undocumented" and unit.doc):
                return head
            first, _, rest = head.partition("\n")
            return "\n".join(filter(None, [first, unit.owner_doc, rest]))
        chunking.header = header
    if variant == "embedded-only":
        chunking.lexical_fields = without_owner(release_fields)
    elif variant == "path-column":
        def lexical_fields(unit):
            names, path, doc, code = without_owner(release_fields)(unit)
            return names, path + ("\n" + cjk_bigrams(unit.owner_doc) if unit.owner_doc else ""), doc, code
        chunking.lexical_fields = lexical_fields
    elif variant == "undocumented-only":
        def lexical_fields(unit):
            return (without_owner(release_fields) if unit.doc else release_fields)(unit)
        chunking.lexical_fields = lexical_fields
    elif variant == "none":
        extract._OwnerDocs.summary = lambda self, d, parents: ""


# the parent takes the variant from its arguments; spawned workers (whose sys.argv is the
# parent's after main() rewrote it) from the environment the parent leaves them
_VARIANT = os.environ.get("OWNER_DOC_VARIANT") or (sys.argv[1] if len(sys.argv) > 1 else "")
if _VARIANT in VARIANTS:
    os.environ["OWNER_DOC_VARIANT"] = _VARIANT
    patch(_VARIANT)

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: owner_doc_variants.py {{{','.join(VARIANTS)}}} index REPO [codesearch index options]")
    from codesearch.cli import main

    sys.argv = ["codesearch", *sys.argv[2:]]
    main()
