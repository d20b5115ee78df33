"""How Chinese questions are rendered in English, and which words came from CC-CEDICT.

    python bench/zh_renderings.py [QUESTIONS_FILE]   # one question a line; default: the 50
                                                     # everyday questions in bench/data/

The glossary (codesearch/data/zh_glossary.tsv) wins over CC-CEDICT, whose first sense of a
word is often the everyday or literary one (合法 "lawful", 块 "lump"). Reading this output is
how its second list was checked on questions that are not the benchmark's: each line shows the
rendering, then every segment that took CC-CEDICT's sense, to be judged by eye.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch import zh  # noqa: E402

DEFAULT = Path(__file__).resolve().parent / "data" / "zh_everyday_questions.txt"


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    glossary = zh.get_glossary()
    from_dictionary = 0
    for question in filter(None, (line.strip() for line in path.read_text(encoding="utf-8").splitlines())):
        tr = zh.translate(question)
        cedict = [f"{w}={alts[0]}" for w, alts in tr.segments if alts and w not in glossary]
        from_dictionary += len(cedict)
        print(f"{question} | {tr.english} | CC-CEDICT: {' '.join(cedict)}")
    print(f"# {from_dictionary} segments took CC-CEDICT's sense")
    return 0


if __name__ == "__main__":
    sys.exit(main())
