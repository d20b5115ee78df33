; Scala: `def` in classes, objects, traits, enums and at top level (Scala 3), local defs,
; auxiliary constructors (`def this(...)`). Abstract `def` declarations are left out.
; A Scala 3 `extension (s: String)` qualifies its methods by the extended type.

(function_definition
  name: (identifier) @name
  body: (_) @body) @function

(class_definition name: (identifier) @name) @scope
(object_definition name: (identifier) @name) @scope
(trait_definition name: (identifier) @name) @scope
(enum_definition name: (identifier) @name) @scope

(extension_definition
  parameters: (parameters (parameter type: [(type_identifier) (generic_type type: (type_identifier))] @name))) @scope
