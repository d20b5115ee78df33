; C++: function definitions, in or out of their class (prototypes and `= default` /
; `= delete` have no body and are not units). A qualified name `Foo::bar` or
; `SkipList<K, C>::Insert` makes a method of `Foo`/`SkipList` (the engine drops template
; arguments). Classes, structs, unions and namespaces are scopes, so a method is
; `ns.Class.method`. `template <...>` is a wrapper (languages.py): it is in the range.

; names: f, method (in a class), Foo::bar, ~Foo, operator==, foo<int>
(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier) (qualified_identifier) (destructor_name)
                 (operator_name) (template_function)] @name)
  body: (_) @body) @function

; T* f(...) / Node* SkipList<K, C>::NewNode(...)
(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [(identifier) (field_identifier) (qualified_identifier)
                   (operator_name) (template_function)] @name))
  body: (_) @body) @function

; T** f(...)
(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: [(identifier) (field_identifier) (qualified_identifier)
                     (operator_name) (template_function)] @name)))
  body: (_) @body) @function

; T& f(...) / Foo& Foo::operator=(...) / T&& f(...)
(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [(identifier) (field_identifier) (qualified_identifier)
                   (operator_name) (template_function)] @name))
  body: (_) @body) @function

; void (*f(int))(int): returns a function pointer
(function_definition
  declarator: (function_declarator
    declarator: (parenthesized_declarator
      (pointer_declarator
        declarator: (function_declarator
          declarator: [(identifier) (field_identifier) (qualified_identifier)] @name))))
  body: (_) @body) @function

; conversion operators: operator bool() const / Foo::operator int() const
(function_definition
  declarator: [(operator_cast) (qualified_identifier name: (operator_cast))] @name
  body: (_) @body) @function

; class Foo {...}, template specialisation Foo<int> {...}, and a nested class defined
; outside its owner: struct SkipList<K, C>::Node {...}
(class_specifier
  name: [(type_identifier) (template_type) (qualified_identifier)] @name
  body: (field_declaration_list)) @scope

(struct_specifier
  name: [(type_identifier) (template_type) (qualified_identifier)] @name
  body: (field_declaration_list)) @scope

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @scope

; namespace a { } / namespace a::b { } (anonymous namespaces have no name: no scope)
(namespace_definition
  name: [(namespace_identifier) (nested_namespace_specifier)] @name) @scope
