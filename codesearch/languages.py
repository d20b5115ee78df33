"""The languages codesearch understands: file extensions, grammar wheels and query files.

Each language is one `Language` record. What counts as a function, a class or a doc
comment lives in `grammars/<name>.scm` (a tree-sitter query, declarative like the
`tags.scm` files of the tree-sitter grammars); the record only says how to load the
grammar from its official PyPI wheel and a few facts the query cannot express
(which node types are comments, which nodes wrap a definition such as decorators).
"""

from __future__ import annotations

import importlib
import os
from importlib import resources
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Language:
    name: str  # our key, also the query file name: grammars/<name>.scm
    module: str  # the official wheel's import name
    entry: str = "language"  # function in that module returning the grammar pointer
    extensions: tuple[str, ...] = ()
    filenames: tuple[str, ...] = ()  # exact file names (e.g. "Rakefile")
    comment_types: tuple[str, ...] = ("comment",)
    # Parents that belong to a definition (decorators, export, template<...>): the
    # unit's line range grows to cover them and leading comments are looked for above them.
    wrapper_types: tuple[str, ...] = ()
    # Nodes between a doc comment and its definition that are not part of the definition
    # (Rust `#[...]` attributes, decorators of JS/TS class members): skipped when looking
    # for the leading comment.
    attribute_types: tuple[str, ...] = ()
    # Comment prefixes that mark a doc comment; empty means any adjacent comment counts.
    doc_prefixes: tuple[str, ...] = ()
    pygments_name: str = ""
    shebangs: tuple[str, ...] = field(default=())
    # Doc comments are XML (C# `///`): tags are dropped from the doc text.
    xml_doc: bool = False
    # Text fallback for definitions the grammar cannot parse (see extract._recover):
    # `recover_start` matches a definition's first line and names it (group "name"),
    # `recover_stop` matches a line where the next top-level statement begins.
    recover_start: str = ""
    recover_stop: str = ""


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in [
        Language("python", "tree_sitter_python", extensions=(".py", ".pyi"),
                 wrapper_types=("decorated_definition",), pygments_name="python",
                 shebangs=("python",)),
        Language("javascript", "tree_sitter_javascript",
                 extensions=(".js", ".mjs", ".cjs", ".jsx"),
                 wrapper_types=("export_statement",), attribute_types=("decorator",),
                 pygments_name="javascript",
                 shebangs=("node",)),
        Language("typescript", "tree_sitter_typescript", entry="language_typescript",
                 extensions=(".ts", ".mts", ".cts"), wrapper_types=("export_statement",),
                 attribute_types=("decorator",), pygments_name="typescript"),
        Language("tsx", "tree_sitter_typescript", entry="language_tsx", extensions=(".tsx",),
                 wrapper_types=("export_statement",), attribute_types=("decorator",),
                 pygments_name="tsx"),
        Language("java", "tree_sitter_java", extensions=(".java",),
                 comment_types=("line_comment", "block_comment"), pygments_name="java"),
        Language("go", "tree_sitter_go", extensions=(".go",), pygments_name="go"),
        Language("rust", "tree_sitter_rust", extensions=(".rs",),
                 comment_types=("line_comment", "block_comment"),
                 attribute_types=("attribute_item",), pygments_name="rust"),
        Language("c", "tree_sitter_c", extensions=(".c", ".h"), pygments_name="c"),
        Language("cpp", "tree_sitter_cpp",
                 extensions=(".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++",
                             ".ipp", ".tpp"),
                 wrapper_types=("template_declaration",), pygments_name="cpp"),
        Language("csharp", "tree_sitter_c_sharp", extensions=(".cs",), xml_doc=True,
                 pygments_name="csharp"),
        Language("ruby", "tree_sitter_ruby", extensions=(".rb", ".rake", ".gemspec"),
                 filenames=("Rakefile", "Gemfile"), pygments_name="ruby", shebangs=("ruby",)),
        Language("php", "tree_sitter_php", entry="language_php", extensions=(".php",),
                 pygments_name="php"),
        Language("kotlin", "tree_sitter_kotlin", extensions=(".kt", ".kts"),
                 comment_types=("line_comment", "multiline_comment", "block_comment"),
                 pygments_name="kotlin"),
        Language("swift", "tree_sitter_swift", extensions=(".swift",),
                 comment_types=("comment", "multiline_comment"), pygments_name="swift"),
        Language("scala", "tree_sitter_scala", extensions=(".scala", ".sc"),
                 comment_types=("comment", "block_comment"), pygments_name="scala"),
        Language("bash", "tree_sitter_bash", extensions=(".sh", ".bash", ".zsh"),
                 pygments_name="bash", shebangs=("bash", "sh", "zsh")),
        Language("lua", "tree_sitter_lua", extensions=(".lua",), pygments_name="lua",
                 shebangs=("lua",)),
        # tree-sitter-sql parses PostgreSQL dollar-quoted bodies but not MySQL
        # `BEGIN ... END` bodies between DELIMITERs nor T-SQL: those are recovered from text.
        Language("sql", "tree_sitter_sql", extensions=(".sql",),
                 comment_types=("comment", "marginalia"), wrapper_types=("statement",),
                 recover_start=r"(?i)^\s*CREATE\s+(?:OR\s+(?:REPLACE|ALTER)\s+)?(?:DEFINER\s*=\s*\S+\s+)?"
                               r"(?:FUNCTION|PROCEDURE|PROC)\s+(?:[\w\"`\[\]]+\.)?[\"`\[]?(?P<name>\w+)",
                 recover_stop=r"(?i)^(?:CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|DELIMITER|GO)\b",
                 pygments_name="sql"),
    ]
}

_BY_EXTENSION = {ext: lang for lang in LANGUAGES.values() for ext in lang.extensions}
_BY_FILENAME = {fn: lang for lang in LANGUAGES.values() for fn in lang.filenames}


def language_for_path(path: str, first_line: bytes = b"") -> Language | None:
    """Pick a language by file name or extension, then by a `#!` line."""
    base = os.path.basename(path)
    if base in _BY_FILENAME:
        return _BY_FILENAME[base]
    ext = os.path.splitext(base)[1].lower()
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    if first_line.startswith(b"#!"):
        interp = first_line[2:].decode("utf-8", "replace").split()
        words = [os.path.basename(w) for w in interp[:2]]
        for lang in LANGUAGES.values():
            if any(w.rstrip("0123456789.") in lang.shebangs for w in words):
                return lang
    return None


def query_files() -> dict[str, str]:
    """Every query file shipped in the package, name -> text (importlib.resources, so a
    wheel, a zip or an editable install all work the same)."""
    folder = resources.files("codesearch") / "grammars"
    return {entry.name: entry.read_text(encoding="utf-8")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name) if entry.name.endswith(".scm")}


def _query_file(name: str) -> str:
    entry = resources.files("codesearch") / "grammars" / f"{name}.scm"
    try:
        return entry.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"codesearch/grammars/{name}.scm is missing from this installation; "
                                f"reinstall codesearch") from None


@lru_cache(maxsize=None)
def load_grammar(name: str):
    """The tree-sitter Language object for one of our languages (cached)."""
    import tree_sitter

    lang = LANGUAGES[name]
    module = importlib.import_module(lang.module)
    return tree_sitter.Language(getattr(module, lang.entry)())


@lru_cache(maxsize=None)
def load_query(name: str):
    """Compile grammars/<name>.scm against its grammar (cached)."""
    import tree_sitter

    return tree_sitter.Query(load_grammar(name), query_source(name))


def query_source(name: str) -> str:
    """The text of grammars/<name>.scm with the files it inherits from in front of it.

    A first line `; inherits: typescript` pulls in another language's patterns (the
    convention of nvim-treesitter's query files), so a grammar that extends another, such as
    TSX over TypeScript, does not repeat its patterns.
    """
    source = _query_file(name)
    first = source.lstrip().split("\n", 1)[0]
    if first.startswith("; inherits:"):
        parents = [p.strip() for p in first.split(":", 1)[1].split(",") if p.strip()]
        return "\n".join([*(query_source(p) for p in parents), source])
    return source
