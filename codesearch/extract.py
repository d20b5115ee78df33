"""Extract functions and methods from source files with tree-sitter.

The per-language knowledge lives in `grammars/<language>.scm`. A query file tags nodes
with these captures (the idea of declarative tag queries comes from the tree-sitter
grammars' `tags.scm` files and aider's repo map; the capture names are ours):

    @function   a function-like definition (function, method, constructor, lambda bound to a name)
    @method     the same, always reported as a method
    @scope      something that qualifies the names inside it: class, struct, interface,
                trait, impl block, module, namespace, object
    @open_scope a scope without a body that qualifies what follows it, up to the next node of
                its type or the end of its parent (C# `namespace A;`, PHP `namespace A;`)
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
import time
from dataclasses import dataclass, field

from . import c_family
from .c_family import C_FAMILY
from .languages import LANGUAGES, Language, load_grammar, load_query

# Separators by which a captured name may be qualified: C++ `A::b`, PHP `A\b`, JS `a.b`,
# Ruby `self.x`, Lua `M:f`.
_QUALIFIER_SPLIT = re.compile(r"::|->|\\|\.|:")
_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")
_OPERATOR = re.compile(r"\boperator\b\s*(\(\)|[^(]*)")
# Qualifier words that name the current object rather than an owner: Ruby `self.x`,
# JS `this.x = function` and `Foo.prototype.x = function`.
_IMPLICIT_OWNERS = ("self", "this", "prototype")
_CLASS_LIKE = ("class", "struct", "interface", "trait", "impl", "object", "enum", "record",
               "protocol", "extension", "module", "union", "type_spec", "type_declaration")


_COMMENT_STARTS = ("#", "//", "/*", "*", "--")
PARSE_BUDGET_S = 5.0  # seconds of parsing and matching per file before it becomes one file unit
_READ_CHUNK = 1 << 16


class ParseBudgetExceeded(Exception):
    """tree-sitter ran past the file's time budget (a grammar that stalls on odd input)."""


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
    # the summary of the doc comment of the class (struct, trait, interface...) a method
    # belongs to: `handle` says little on its own, its class's "Buffers all records until a
    # certain level is reached" says what it is for (owner_summary; full-text index only)
    owner_doc: str = ""


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
    open_scope: bool = False
    head: object = None  # where the definition starts when the parser split it off (c_family.py)

    @property
    def end_byte(self) -> int:
        """Where the definition's scope ends; an @open_scope runs on past its node."""
        if not self.open_scope or self.node.parent is None:
            return self.node.end_byte
        sib = self.node.next_sibling
        while sib is not None and sib.type != self.node.type:
            sib = sib.next_sibling
        return sib.start_byte if sib is not None else self.node.parent.end_byte


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _split_name(raw: str) -> tuple[list[str], str]:
    raw = raw.strip()
    op = _OPERATOR.search(raw)  # C++ `Foo::operator<<`, `operator bool() const`
    if op:
        raw, op = raw[:op.start()], " ".join(op.group(0).split())
    while "<" in raw:  # C++ `SkipList<K, C>::Insert`: drop template arguments
        stripped = _TEMPLATE_ARGS.sub("", raw)
        if stripped == raw:
            break
        raw = stripped
    parts = [p.strip() for p in _QUALIFIER_SPLIT.split(raw)]
    parts = [p for p in parts if p and p not in _IMPLICIT_OWNERS]
    if op:
        return parts, op
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
    lua_block = re.match(r"--\[(=*)\[", text)  # Lua `--[[ ... ]]`
    if lua_block and text.endswith("]" + lua_block.group(1) + "]"):
        text = text[lua_block.end():len(text) - len(lua_block.group(1)) - 2]
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
    first = outer
    while sib is None and first.parent is not None and first.parent.start_byte == first.start_byte:
        # the first statement of a body node that starts with it (Ruby `body_statement`):
        # the comment is a sibling of that body
        first = first.parent
        sib = first.prev_sibling
    while sib is not None and (sib.type in lang.comment_types
                               or sib.type in lang.attribute_types):
        end_row = sib.end_point[0]
        if sib.end_point[1] == 0 and end_row > sib.start_point[0]:  # Rust `//` keeps its newline
            end_row -= 1
        if end_row < expected_row - 1:
            break
        if sib.type in lang.comment_types:
            comments.append(sib)
        expected_row = sib.start_point[0]
        sib = sib.prev_sibling
    if not comments:
        return ""
    comments.reverse()
    raw = [_text(c, source) for c in comments]
    if lang.doc_prefixes and not any(r.lstrip().startswith(lang.doc_prefixes) for r in raw):
        return ""
    doc = "\n".join(clean_comment(r) for r in raw).strip()
    return strip_xml_doc(doc) if lang.xml_doc else doc


_XML_TAG = re.compile(r"<(/?)([\w:.-]+)([^<>]*?)/?>")


def strip_xml_doc(doc: str) -> str:
    """C# XML doc text without its tags: `<summary>` goes, `<see cref="Foo"/>` and
    `<param name="x">` leave their attribute values."""
    def repl(m):
        values = re.findall(r'"([^"]*)"', m.group(3)) if not m.group(1) else []
        self_closing = m.group(0).endswith("/>")
        return " ".join(values) + (" " if values and not self_closing else "")
    text = _XML_TAG.sub(repl, doc)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    lines = [" ".join(l.split()) for l in text.splitlines()]
    return "\n".join(l for l in lines if l)


def _module_name(path: str) -> str:
    """A file's module name: its base name without extension (`index` -> its folder)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if not parts:
        return ""
    stem = parts[-1].split(".", 1)[0]
    if stem == "index" and len(parts) > 1:
        return parts[-2]
    return stem


def _collect(tree, lang: Language, source: bytes, path: str = "", deadline: float | None = None) -> list[_Def]:
    import tree_sitter

    query = load_query(lang.name)
    defs: dict[tuple[int, int, bool], _Def] = {}
    # No progress callback here: tree-sitter 0.26.1's QueryCursor.matches(..., progress_callback)
    # crashes the interpreter (SIGSEGV) even on a 10-line file. Matching is linear in the tree;
    # the stalls seen are in the parser, which parse() bounds. The budget is checked after.
    matches = tree_sitter.QueryCursor(query).matches(tree.root_node)
    if deadline is not None and time.monotonic() > deadline:
        raise ParseBudgetExceeded
    for pattern, caps in matches:
        for key, is_scope, forced in (("function", False, False), ("method", False, True),
                                      ("scope", True, False), ("open_scope", True, False)):
            nodes = caps.get(key)
            if not nodes:
                continue
            node = nodes[0]
            name_nodes = caps.get("name")
            if name_nodes:
                qualifier, name = _split_name(_text(name_nodes[0], source))
            elif query.pattern_settings(pattern).get("name_from") == "file" and path:
                # `(#set! name_from "file")`: an anonymous definition (JS `export default
                # (a) => {}`) takes the name of its module file
                qualifier, name = [], _module_name(path)
            else:
                continue
            ident = (node.start_byte, node.end_byte, is_scope)
            d = defs.get(ident)  # several patterns may match one node: merge what they say
            if d is None:
                d = defs[ident] = _Def(node=node, outer=_widen(node, lang), name=name,
                                       qualifier=qualifier, is_scope=is_scope)
            d.forced_method = d.forced_method or forced
            d.open_scope = d.open_scope or key == "open_scope"
            if caps.get("doc") and d.doc_node is None:
                d.doc_node = caps["doc"][0]
            if caps.get("body") and d.body_node is None:
                d.body_node = caps["body"][0]
            if caps.get("receiver") and not d.receiver:
                d.receiver = _split_name(_text(caps["receiver"][0], source))[1]
    return sorted(defs.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte))


def _contains(outer: _Def, d: _Def) -> bool:
    """Whether `outer`'s scope strictly contains definition `d` (an identical span does not)."""
    return (outer.node.start_byte <= d.node.start_byte and d.node.end_byte <= outer.end_byte
            and (outer.node.start_byte, outer.end_byte) != (d.node.start_byte, d.node.end_byte))


def _enclosing_all(defs: list[_Def]) -> dict[int, list[_Def]]:
    """id(d) -> the definitions that strictly contain d, outermost (earliest) first.

    One scan over `defs` (sorted by start, then longest first) with the list of scopes still
    open: a definition whose scope ended before the current start can contain nothing that
    follows, so it leaves the list. Comparing every pair instead took minutes for a file of a
    few thousand functions. Definitions that start at the same byte are compared with each
    other both ways, as the pairwise test did, so the result is the same.
    """
    out: dict[int, list[_Def]] = {}
    active: list[_Def] = []
    i, n = 0, len(defs)
    while i < n:
        start = defs[i].node.start_byte
        j = i
        while j < n and defs[j].node.start_byte == start:
            j += 1
        group = defs[i:j]
        active = [p for p in active if p.end_byte >= start]
        for d in group:
            out[id(d)] = [p for p in active if _contains(p, d)] + \
                         [p for p in group if p is not d and _contains(p, d)]
        active.extend(group)
        i = j
    return out


def _signature(d: _Def, source: bytes) -> str:
    start = (d.head if d.head is not None else d.node).start_byte
    if d.body_node is not None and d.body_node.start_byte > start:
        sig = source[start:d.body_node.start_byte].decode("utf-8", "replace")
    else:
        sig = source[start:d.node.end_byte].decode("utf-8", "replace").split("\n", 1)[0]
    kept = [l for l in sig.split("\n") if not l.strip().startswith(_COMMENT_STARTS)]
    sig = " ".join(" ".join(kept).split())
    return sig.rstrip("{:= ").strip()[:400]


def parse(source: bytes, language: str, deadline: float | None = None):
    """Parse bytes with the language's grammar; returns the tree-sitter Tree.

    With a `deadline` (time.monotonic()), tree-sitter's progress callback stops the parse once
    it passes and ParseBudgetExceeded is raised: some grammars spend minutes on a few KB of
    broken input (a mutated Kotlin file of 1.4 KB took 85 s), and one such file must not stall
    an index run. The callback is only offered for parses that read through a callback, hence
    the slicing reader; it costs nothing measurable. The reader returns bytes, not memoryview
    slices: with memoryviews py-tree-sitter 0.26.1 reads freed memory (a crash on the C#
    fixtures after a few files).
    """
    import tree_sitter

    parser = tree_sitter.Parser(load_grammar(language))
    if deadline is None:
        return parser.parse(source)
    try:
        return parser.parse(lambda offset, _point: source[offset:offset + _READ_CHUNK],
                            progress_callback=lambda _offset, _has_error: time.monotonic() > deadline)
    except ValueError:  # "Parsing failed": the callback cancelled it
        if time.monotonic() > deadline:
            raise ParseBudgetExceeded from None
        raise


@dataclass
class Extraction:
    """The units of one file, and why it fell back to one file-level unit (when it did)."""

    units: list[Unit] = field(default_factory=list)
    fallback: str | None = None


def extract_file(path: str, source: bytes, language: str, budget_s: float | None = PARSE_BUDGET_S) -> Extraction:
    """`extract_units` within a time budget: a file whose parsing or matching runs past
    `budget_s` seconds becomes one file-level unit (still found by its text), and says so."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    try:
        return Extraction(extract_units(path, source, language, deadline=deadline))
    except ParseBudgetExceeded:
        lines = source.decode("utf-8", "replace").split("\n")
        return Extraction([file_unit(path, language, lines)],
                          fallback=f"parsing took over {budget_s:g} s; indexed as one file-level unit")


def extract_units(path: str, source: bytes, language: str, deadline: float | None = None) -> list[Unit]:
    """All functions and methods of one file, or one file-level unit if it has none.

    Syntax errors do not stop extraction: tree-sitter recovers and we keep whatever
    definitions it still recognises. Past `deadline` (time.monotonic()) parsing and matching
    stop with ParseBudgetExceeded (extract_file turns that into a file-level unit).
    """
    lang = LANGUAGES[language]
    lines = source.decode("utf-8", "replace").split("\n")
    tree = parse(source, language, deadline)
    if language in c_family.PREPROCESSED:
        tree, source = c_family.best_parse(tree, source, language, lambda text, name: parse(text, name, deadline))
    defs = _collect(tree, lang, source, path, deadline)
    if language in C_FAMILY:
        c_family.fix_macro_names(defs, source, _split_name)
    enclosing = _enclosing_all(defs)
    owners = _OwnerDocs(defs, lang, source)
    units: list[Unit] = []
    for d in defs:
        if d.is_scope:
            continue
        parents = enclosing[id(d)]
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
        first = d.head if d.head is not None else d.outer
        if d.doc_node is not None:
            doc = clean_docstring(_text(d.doc_node, source))
        else:
            doc = _leading_comment(first, lang, source)
        start = first.start_point[0]
        end = d.outer.end_point[0]
        if d.outer.end_point[1] == 0 and end > start:  # node ends at column 0 of next line
            end -= 1
        units.append(Unit(
            path=path, language=language, kind="method" if is_method else "function",
            name=d.name, qualname=".".join(qual + [d.name]),
            start_line=start + 1, end_line=end + 1,
            signature=_signature(d, source), doc=doc,
            code="\n".join(lines[start:end + 1]),
            owner_doc=owners.summary(d, parents) if is_method else "",
        ))
    if lang.recover_start and tree.root_node.has_error:
        units = _recover(units, tree, lang, path, lines)
    if not units:
        units.append(file_unit(path, language, lines))
    return units


# a class's summary is repeated in the full-text row of each of its methods: short
OWNER_DOC_MAX_CHARS = 200


def owner_summary(doc: str) -> str:
    """The first paragraph of a class's doc comment, up to OWNER_DOC_MAX_CHARS: what the class
    is for, without its usage examples and parameter lists."""
    para = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    para = " ".join(para.split())
    if len(para) > OWNER_DOC_MAX_CHARS:
        para = para[:OWNER_DOC_MAX_CHARS].rsplit(" ", 1)[0]
    return para


class _OwnerDocs:
    """The doc comment summary of the class a method belongs to (Unit.owner_doc).

    The owner is the nearest enclosing class-like scope; when that says nothing (a Rust `impl`
    block, a C++ `Foo::bar` defined outside its class) or the method has a Go receiver, a
    documented class-like scope of the same name in the same file stands in for it.
    """

    def __init__(self, defs: list[_Def], lang: Language, source: bytes):
        self.defs, self.lang, self.source = defs, lang, source
        self.docs: dict[int, str] = {}
        self._by_name: dict[str, str] | None = None

    def by_name(self) -> dict[str, str]:
        """Documented class-like scopes of the file by name (read only when a method needs it)."""
        if self._by_name is None:
            self._by_name = {}
            for d in self.defs:
                if d.is_scope and _class_like(d) and d.name not in self._by_name and self.doc_of(d):
                    self._by_name[d.name] = self.doc_of(d)
        return self._by_name

    def doc_of(self, scope: _Def) -> str:
        key = id(scope)
        if key not in self.docs:
            if scope.doc_node is not None:
                doc = clean_docstring(_text(scope.doc_node, self.source))
            else:
                first = scope.head if scope.head is not None else scope.outer
                doc = _leading_comment(first, self.lang, self.source)
                if not doc and first.parent is not None and first.parent.type == "type_declaration":
                    doc = _leading_comment(first.parent, self.lang, self.source)  # Go: `type X struct` is a spec in a declaration
            self.docs[key] = owner_summary(doc)
        return self.docs[key]

    def summary(self, d: _Def, parents: list[_Def]) -> str:
        owner = next((p for p in reversed(parents) if p.is_scope and _class_like(p)), None)
        if owner is not None and self.doc_of(owner):
            return self.doc_of(owner)
        name = d.receiver or (d.qualifier[-1] if d.qualifier else owner.name if owner is not None else "")
        return self.by_name().get(name, "") if name else ""


def _class_like(d: _Def) -> bool:
    return any(k in d.node.type for k in _CLASS_LIKE)


def _recover(units: list[Unit], tree, lang: Language, path: str, lines: list[str]) -> list[Unit]:
    """Definitions the grammar could not parse, found in the text (SQL: MySQL procedures
    with `BEGIN ... END` bodies, T-SQL). Only used when the tree has errors.

    A line matching `lang.recover_start` that lies in no unit starts a new unit; a unit
    whose body the parser cut short (an ERROR follows it before the next statement) is
    extended. Either ends before the next `recover_start`/`recover_stop` line, less
    trailing blank and comment lines. The doc is the comment lines directly above.
    """
    start_re, stop_re = re.compile(lang.recover_start), re.compile(lang.recover_stop)
    bounds = [i for i, l in enumerate(lines) if start_re.match(l) or stop_re.match(l)]
    error_rows, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            error_rows.append(node.start_point[0])
        else:
            stack.extend(c for c in node.children if c.has_error)

    def is_blank_or_comment(row: int) -> bool:
        return not lines[row].strip() or lines[row].lstrip().startswith(_COMMENT_STARTS)

    def end_of(row: int) -> int:
        end = next((b for b in bounds if b > row), len(lines)) - 1
        while end > row and is_blank_or_comment(end):
            end -= 1
        return end

    out = []
    for u in units:
        end = end_of(u.start_line - 1)
        if any(u.end_line - 1 < r <= end for r in error_rows):
            u.end_line = end + 1
            u.code = "\n".join(lines[u.start_line - 1:end + 1])
        out.append(u)
    for row, line in enumerate(lines):
        m = start_re.match(line)
        if not m or any(u.start_line - 1 <= row <= u.end_line - 1 for u in out):
            continue
        end, top = end_of(row), row
        while top > 0 and lines[top - 1].strip() and is_blank_or_comment(top - 1):
            top -= 1
        doc = clean_comment("\n".join(lines[top:row])) if top < row else ""
        out.append(Unit(path=path, language=lang.name, kind="function", name=m.group("name"),
                        qualname=m.group("name"), start_line=row + 1, end_line=end + 1,
                        signature=" ".join(line.split()), doc=doc,
                        code="\n".join(lines[row:end + 1])))
    return sorted(out, key=lambda u: u.start_line)


def file_unit(path: str, language: str, lines: list[str]) -> Unit:
    """One unit for a whole file, so scripts and config without functions stay findable."""
    while lines and lines[-1] == "":
        lines = lines[:-1]
    name = path.rsplit("/", 1)[-1]
    return Unit(path=path, language=language, kind="file", name=name, qualname=name,
                start_line=1, end_line=max(1, len(lines)), signature="", doc="",
                code="\n".join(lines))
