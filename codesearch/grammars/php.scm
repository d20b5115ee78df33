; PHP: functions, methods of classes, traits, interfaces and enums; namespaces as scopes.
; `namespace A\B;` without braces covers the rest of the file (up to the next namespace).
; Attributes `#[...]` are children of the declaration. Abstract methods are left out.

(function_definition
  name: (name) @name
  body: (_) @body) @function

(method_declaration
  name: (name) @name
  body: (_) @body) @method

(class_declaration name: (name) @name) @scope
(trait_declaration name: (name) @name) @scope
(interface_declaration name: (name) @name) @scope
(enum_declaration name: (name) @name) @scope

(namespace_definition name: (_) @name body: (_)) @scope
(namespace_definition name: (_) @name !body) @open_scope
