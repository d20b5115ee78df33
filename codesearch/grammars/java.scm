; Java: methods and constructors (with a body: abstract and interface methods without
; one are not units); classes, interfaces, enums, records and annotation types as
; scopes. Annotations sit in `modifiers`, inside the definition's range; the Javadoc
; above it is found as its leading comment.

(method_declaration
  name: (identifier) @name
  body: (block) @body) @method

(constructor_declaration
  name: (identifier) @name
  body: (constructor_body) @body) @method

; record compact constructor: record Point(int x, int y) { Point { ... } }
(compact_constructor_declaration
  name: (identifier) @name
  body: (block) @body) @method

(class_declaration
  name: (identifier) @name) @scope

(interface_declaration
  name: (identifier) @name) @scope

(enum_declaration
  name: (identifier) @name) @scope

(record_declaration
  name: (identifier) @name) @scope

(annotation_type_declaration
  name: (identifier) @name) @scope

; enum constant with a body: enum Op { PLUS { int apply(...) {...} } }
(enum_constant
  name: (identifier) @name
  body: (class_body)) @scope

; anonymous class: new Comparator<T>() { public int compare(...) {...} } (named by its
; type; the engine drops `<T>`)
(object_creation_expression
  type: (_) @name
  (class_body)) @scope
