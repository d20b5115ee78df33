; C#: methods, constructors, local functions and properties whose accessors have a body;
; classes, structs, interfaces, records and namespaces as scopes. Attributes are children
; of the declaration, so they are inside its range. Declarations without a body
; (interface or abstract members) are left out.

(method_declaration
  name: (identifier) @name
  body: (_) @body) @function

(constructor_declaration
  name: (identifier) @name
  body: (_) @body) @function

; a function declared inside a method body: Outer.Method.Local. Error recovery around
; `#if` directives can turn `else if (...) { }` into a "local function" named `if`.
((local_function_statement
   name: (identifier) @name
   body: (_) @body) @function
 (#not-match? @name "^(if|else|while|for|foreach|switch|lock|using|fixed|return)$"))

; `int Count { get { ... } }`: a property with at least one accessor that has a body
(property_declaration
  name: (identifier) @name
  accessors: (accessor_list (accessor_declaration body: (_))) @body) @method

(class_declaration name: (identifier) @name) @scope
(struct_declaration name: (identifier) @name) @scope
(interface_declaration name: (identifier) @name) @scope
(record_declaration name: (identifier) @name) @scope

; `namespace A.B { ... }` and the file-scoped `namespace A.B;`, which covers the rest of the file
(namespace_declaration name: (_) @name) @scope
(file_scoped_namespace_declaration name: (_) @name) @open_scope
