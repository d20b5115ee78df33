"""Markdown rows for docs/quality.md from `devset_eval.py --out` files: one row per
(label, file, config), per field, with R@1 / R@10 / MRR@10 per language and overall, and the
ranking cost per question.

    python bench/lever_table.py "before=r1.json:before" "+ doc credit=r1.json:before_doc" ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LANGS = ("python", "javascript", "go", "java", "rust", "cpp", "php", "csharp")


def main(specs: list[str]) -> int:
    rows = []
    for spec in specs:
        label, _, where = spec.partition("=")
        path, _, config = where.rpartition(":")
        rows.append((label, json.loads(Path(path).read_text())[config]))
    for field in ("en", "zh", "doc"):
        print(f"\n#### `{field}`\n")
        print("| lever | " + " | ".join(LANGS) + " | overall | rank ms |")
        print("|---" * (len(LANGS) + 3) + "|")
        for label, report in rows:
            fig = report["figures"][field]
            cells = [" / ".join(f"{v:.3f}" for v in fig[lang]) if lang in fig else "" for lang in LANGS]
            overall = " / ".join(f"{v:.3f}" for v in fig["overall"])
            print(f"| {label} | " + " | ".join(cells) + f" | {overall} | {report['ms_per_question']['rank']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
