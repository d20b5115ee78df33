"""What tree-sitter gets wrong about C and C++ definitions (and C#'s, for its `#if`), and the
repairs extract.py applies.

Two things break the C/C++ grammars on real code, both from the preprocessor, which the
grammars do not run:

- Conditional directives inside a definition (`#if !defined(NDEBUG)` in a constructor's
  initializer list, leveldb's `Limiter`) derail the parser: the class never closes, and every
  later definition of the file is read as nested in it (`Limiter.PosixEnv.LockFile`, without
  its namespace). So do attribute macros in a class head (`class SCOPED_LOCKABLE MutexLock {`:
  no class at all). `best_parse` parses such a file a second time with the directive lines
  and those macros blanked (same bytes, same line numbers) and keeps whichever tree has fewer
  errors.
- Annotation macros between the parameters and the body (clang thread-safety annotations:
  `void Lock() EXCLUSIVE_LOCK_FUNCTION() {`, `int Read() LOCKS_EXCLUDED(mu_) {`) are read as
  the function's declarator, so the unit is named after the macro; and test macros
  (`TEST_F(DBTest, Empty) { ... }`, googletest) name every test `TEST_F`. `fix_macro_names`
  gives such units their real names: the declarator the parser set aside, or the suite and
  test names.
"""

from __future__ import annotations

import re

C_FAMILY = {"c", "cpp"}
# languages whose conditional directives (`#if ... #endif`) can derail their grammars: C#'s
# grammar knows the directives, but not one that splits a statement (`}\n#if X\nelse {...}\n#endif`
# in Newtonsoft.Json's JsonTextReader: 42 of its 945 files, 270 units misnamed)
PREPROCESSED = C_FAMILY | {"csharp"}
_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|elifdef|elifndef|else|endif)\b")
# `class SCOPED_LOCKABLE MutexLock {` / `struct LOCKABLE Mutex final :`: an attribute macro
# between the keyword and the name
_CLASS_MACRO = re.compile(rb"\b(?:class|struct)[ \t]+([A-Z][A-Z0-9_]*[A-Z0-9])[ \t]+(?=[A-Za-z_]\w*[ \t]*(?:final[ \t]*)?[:{\n])")
_MACRO_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")  # LOCKS_EXCLUDED, EXCLUSIVE_LOCK_FUNCTION
_TEST_MACROS = {"TEST", "TEST_F", "TEST_P", "TYPED_TEST", "TYPED_TEST_P", "FRIEND_TEST"}
_NAME_TYPES = {"identifier", "field_identifier", "qualified_identifier", "destructor_name",
               "operator_name", "template_function"}


def error_count(tree) -> int:
    """ERROR and MISSING nodes in a tree (0 for a clean parse)."""
    if not tree.root_node.has_error:
        return 0
    count, stack = 0, [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        stack.extend(c for c in node.children if c.has_error or c.is_missing)
    return count


def blank_directives(source: bytes, class_macros: bool = True) -> bytes:
    """The source with conditional preprocessor lines (and their `\\` continuations) and, for
    C/C++, attribute macros in class heads turned into spaces: byte offsets and line numbers
    stay, both branches of each conditional are kept."""
    if class_macros:
        source = _CLASS_MACRO.sub(lambda m: m.group(0).replace(m.group(1), b" " * len(m.group(1))), source)
    lines = source.split(b"\n")
    out, continued = [], False
    for line in lines:
        if continued or _DIRECTIVE.match(line):
            continued = line.rstrip().endswith(b"\\")
            out.append(b" " * len(line))
        else:
            out.append(line)
    return b"\n".join(out)


def best_parse(tree, source: bytes, language: str, parse):
    """(tree, source) to extract from: the parse as it is, or, when it has errors and the file
    has conditional directives, the parse with them blanked if that has fewer errors."""
    errors = error_count(tree)
    if not errors or b"#" not in source:
        return tree, source
    blanked = blank_directives(source, class_macros=language in C_FAMILY)
    if blanked == source:
        return tree, source
    other = parse(blanked, language)
    return (other, blanked) if error_count(other) < errors else (tree, source)


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _declarator_name(node):
    """The name node of the first function head under `node` (depth first): a function_declarator,
    or, where error recovery read `Lock()` as a variable with arguments, an init_declarator."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type in ("function_declarator", "init_declarator"):
            # inside an ERROR node the parser assigns no fields: the name is the first child
            inner = n.child_by_field_name("declarator") or (n.named_children[0] if n.named_children else None)
            if inner is not None and inner.type in _NAME_TYPES:
                return inner
        stack.extend(reversed(n.children))
    return None


def _split_head(node):
    """The declaration that `node` ends with when that declaration's `;` is missing (the parser
    cut a definition before an annotation macro), or `node` itself when it is an error node;
    else None."""
    if node is not None and node.type == "ERROR":
        return node  # `~MutexLock() UNLOCK_FUNCTION() {`: the head is an error node of its own
    head = None
    while node is not None:
        if node.type in ("declaration", "field_declaration"):
            head = node
        if not node.children:
            return head if node.is_missing and node.type == ";" else None
        node = node.children[-1]
    return None


def fix_macro_names(defs, source: bytes, split_name) -> None:
    """Rename, in place, C/C++ definitions whose captured name is a macro (see the module doc)."""
    for d in defs:
        if d.is_scope or not _MACRO_NAME.match(d.name) or d.qualifier:
            continue
        if d.name in _TEST_MACROS:
            params = d.node.child_by_field_name("declarator")
            params = params.child_by_field_name("parameters") if params is not None else None
            names = [_text(p, source).strip() for p in (params.named_children if params is not None else [])]
            if len(names) == 2 and all(n.isidentifier() for n in names):
                d.qualifier, d.name = [names[0]], names[1]
            continue
        # `void Lock() EXCLUSIVE_LOCK_FUNCTION() {`: the real declarator sits in an ERROR child
        hidden = next((c for c in d.node.children if c.type == "ERROR"), None)
        name_node = _declarator_name(hidden) if hidden is not None else None
        if name_node is None:
            # `bool Insert(const std::string& f) LOCKS_EXCLUDED(mu_) {`: the head was read as a
            # declaration that lacks its `;`, just before the definition
            head = _split_head(d.node.prev_sibling)
            name_node = _declarator_name(head) if head is not None else None
            if name_node is not None:
                d.head = head
        if name_node is not None:
            d.qualifier, d.name = split_name(_text(name_node, source))
