"""Extract functions and methods from source files with tree-sitter.

The per-language knowledge lives in `grammars/<language>.scm`. A query file tags nodes
with these captures (the idea of declarative tag queries comes from the tree-sitter
grammars' `tags.scm` files and aider's repo map; the capture names are ours):

    @function   a function-like definition (function, method, constructor, lambda bound to a name)
    @method     the same, always reported as a method
    @scope      something that qualifies the names inside it: class, struct, interface,
                trait, impl block, module, namespace, object
    @name       the name of the @function/@method/@scope of the same match; it may be
                qualified (`Foo::bar`, `obj.method`), the qualifier then joins the qualname
    @receiver   a type that owns a function defined outside it (Go receivers)
    @doc        a docstring inside the definition (Python)
    @body       the body; everything before it is the signature

Doc comments that precede a definition are found here rather than in the query: the
comments directly above a definition (or above its decorators/export/template wrapper),
with no blank line between.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .languages import LANGUAGES, Language, load_grammar, load_query

# Separators by which a captured name may be qualified: C++ `A::b`, PHP `A\b`, JS `a.b`,
# Ruby `self.x`, Lua `M:f`.
_QUALIFIER_SPLIT = re.compile(r"::|->|\\|\.|:")
_CLASS_LIKE = ("class", "struct", "interface", "trait", "impl", "object", "enum", "record",
               "protocol", "extension", "module", "union", "type_spec", "type_declaration")


_COMMENT_STARTS = ("#", "//", "/*", "*", "--")


@dataclass
class Unit:
    """One searchable piece of code: a function, a method, or a whole file."""

    path: str
    language: str
    kind: str  # "function" | "method" | "file"
    name: str
    qualname: str
    start_line: int  # 1-based, inclusive
    end_line: int
    signature: str
    doc: str
    code: str
    extra: dict = field(default_factory=dict)


@dataclass
class _Def:
    node: object  # the tree-sitter node that the pattern matched
    outer: object  # the node widened over wrappers (decorators, export, template)
    name: str
    qualifier: list[str]
    is_scope: bool
    forced_method: bool = False
    doc_node: object = None
    body_node: object = None
    receiver: str = ""


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _split_name(raw: str) -> tuple[list[str], str]:
    raw = raw.strip()
    parts = [p for p in _QUALIFIER_SPLIT.split(raw) if p and p != "self"]
    if not parts:
        return [], raw
    return parts[:-1], parts[-1]


def _widen(node, lang: Language):
    outer = node
    while outer.parent is not None and outer.parent.type in lang.wrapper_types:
        outer = outer.parent
    return outer


def clean_comment(text: str) -> str:
    """Strip comment markers (//, ///, /** */, #, --, leading *) and join the lines."""
    text = text.strip()
    if text.startswith("/*"):
        text = text[2:]
        if text.endswith("*/"):
            text = text[:-2]
        text = text.lstrip("*!")
    lines = []
    for line in text.splitlines():
        s = line.strip()
        s = re.sub(r"^(///?|//!|#+|--+\[*|\*+|;+|'+)\s?", "", s) if s else s
        lines.append(s.rstrip())
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def clean_docstring(text: str) -> str:
    """A Python-style string literal without its quotes, dedented."""
    s = text.strip()
    m = re.match(r'^[rRuUbBfF]*("""|\'\'\'|"|\')', s)
    if m:
        q = m.group(1)
        s = s[m.end():]
        if s.endswith(q):
            s = s[: -len(q)]
    lines = s.splitlines()
    if len(lines) > 1:
        indents = [len(l) - len(l.lstrip()) for l in lines[1:] if l.strip()]
        cut = min(indents) if indents else 0
        lines = [lines[0].strip()] + [l[cut:].rstrip() for l in lines[1:]]
    return "\n".join(lines).strip()


def _leading_comment(outer, lang: Language, source: bytes) -> str:
    """Comments directly above `outer` (no blank line between), joined top to bottom."""
    comments = []
    expected_row = outer.start_point[0]
    sib = outer.prev_sibling
    while sib is not None and sib.type in lang.comment_types:
        if sib.end_point[0] < expected_row - 1:
            break
        comments.append(sib)
        expected_row = sib.start_point[0]
        sib = sib.prev_sibling
    if not comments:
        return ""
    comments.reverse()
    raw = [_text(c, source) for c in comments]
    if lang.doc_prefixes and not any(r.lstrip().startswith(lang.doc_prefixes) for r in raw):
        return ""
    return "\n".join(clean_comment(r) for r in raw).strip()


def _collect(tree, lang: Language, source: bytes) -> list[_Def]:
    import tree_sitter

    query = load_query(lang.name)
    defs: dict[tuple[int, int, bool], _Def] = {}
    for _pattern, caps in tree_sitter.QueryCursor(query).matches(tree.root_node):
        for key, is_scope, forced in (("function", False, False), ("method", False, True),
                                      ("scope", True, False)):
            nodes = caps.get(key)
            if not nodes:
                continue
            node = nodes[0]
            name_nodes = caps.get("name")
            if not name_nodes:
                continue
            qualifier, name = _split_name(_text(name_nodes[0], source))
            ident = (node.start_byte, node.end_byte, is_scope)
            d = defs.get(ident)  # several patterns may match one node: merge what they say
            if d is None:
                d = defs[ident] = _Def(node=node, outer=_widen(node, lang), name=name,
                                       qualifier=qualifier, is_scope=is_scope)
            d.forced_method = d.forced_method or forced
            if caps.get("doc") and d.doc_node is None:
                d.doc_node = caps["doc"][0]
            if caps.get("body") and d.body_node is None:
                d.body_node = caps["body"][0]
            if caps.get("receiver") and not d.receiver:
                d.receiver = _split_name(_text(caps["receiver"][0], source))[1]
    return sorted(defs.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte))


def _enclosing(d: _Def, all_defs: list[_Def]) -> list[_Def]:
    """Definitions that strictly contain `d`, outermost first."""
    out = []
    for other in all_defs:
        if other is d:
            continue
        if (other.node.start_byte <= d.node.start_byte and d.node.end_byte <= other.node.end_byte
                and (other.node.start_byte, other.node.end_byte) != (d.node.start_byte, d.node.end_byte)):
            out.append(other)
    return out


def _signature(d: _Def, source: bytes) -> str:
    start = d.node.start_byte
    if d.body_node is not None and d.body_node.start_byte > start:
        sig = source[start:d.body_node.start_byte].decode("utf-8", "replace")
    else:
        sig = source[start:d.node.end_byte].decode("utf-8", "replace").split("\n", 1)[0]
    kept = [l for l in sig.split("\n") if not l.strip().startswith(_COMMENT_STARTS)]
    sig = " ".join(" ".join(kept).split())
    return sig.rstrip("{:= ").strip()[:400]


def parse(source: bytes, language: str):
    """Parse bytes with the language's grammar; returns the tree-sitter Tree."""
    import tree_sitter

    return tree_sitter.Parser(load_grammar(language)).parse(source)


def extract_units(path: str, source: bytes, language: str) -> list[Unit]:
    """All functions and methods of one file, or one file-level unit if it has none.

    Syntax errors do not stop extraction: tree-sitter recovers and we keep whatever
    definitions it still recognises.
    """
    lang = LANGUAGES[language]
    tree = parse(source, language)
    defs = _collect(tree, lang, source)
    lines = source.decode("utf-8", "replace").split("\n")
    units: list[Unit] = []
    for d in defs:
        if d.is_scope:
            continue
        parents = _enclosing(d, defs)
        qual = []
        for p in parents:
            qual.extend(p.qualifier)
            qual.append(p.name)
        if d.receiver:
            qual.append(d.receiver)
        qual.extend(d.qualifier)
        nearest = parents[-1] if parents else None
        is_method = d.forced_method or bool(d.receiver) or bool(d.qualifier) or (
            nearest is not None and nearest.is_scope
            and any(k in nearest.node.type for k in _CLASS_LIKE))
        if d.doc_node is not None:
            doc = clean_docstring(_text(d.doc_node, source))
        else:
            doc = _leading_comment(d.outer, lang, source)
        start = d.outer.start_point[0]
        end = d.outer.end_point[0]
        if d.outer.end_point[1] == 0 and end > start:  # node ends at column 0 of next line
            end -= 1
        units.append(Unit(
            path=path, language=language, kind="method" if is_method else "function",
            name=d.name, qualname=".".join(qual + [d.name]),
            start_line=start + 1, end_line=end + 1,
            signature=_signature(d, source), doc=doc,
            code="\n".join(lines[start:end + 1]),
        ))
    if not units:
        units.append(file_unit(path, language, lines))
    return units


def file_unit(path: str, language: str, lines: list[str]) -> Unit:
    """One unit for a whole file, so scripts and config without functions stay findable."""
    while lines and lines[-1] == "":
        lines = lines[:-1]
    name = path.rsplit("/", 1)[-1]
    return Unit(path=path, language=language, kind="file", name=name, qualname=name,
                start_line=1, end_line=max(1, len(lines)), signature="", doc="",
                code="\n".join(lines))
