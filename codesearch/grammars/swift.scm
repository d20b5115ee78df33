; Swift: `func` at top level and in classes, structs, enums, actors, extensions and
; protocol extensions (all `class_declaration` in this grammar; an extension is named
; by the extended type); `init`, `deinit` and `subscript`. Protocol requirements
; (no body) are left out.

(function_declaration
  name: (simple_identifier) @name
  body: (function_body) @body) @function

(init_declaration
  "init" @name
  body: (function_body) @body) @method

(deinit_declaration
  "deinit" @name
  body: (function_body) @body) @method

(subscript_declaration
  "subscript" @name
  (computed_property) @body) @method

(class_declaration name: (_) @name) @scope
(protocol_declaration name: (_) @name) @scope
