; Kotlin: `fun` declarations at top level, in classes, objects and companion objects
; (a companion's functions belong to its class), local functions, secondary constructors.
; An extension function `fun String.slug()` is qualified by its receiver type.
; Abstract functions (no body) are left out.

(function_declaration
  name: (identifier) @name
  (function_body) @body) @function

; extension functions: the receiver type stands right before the name
(function_declaration
  [(user_type . (identifier) @receiver)
   (nullable_type (user_type . (identifier) @receiver))]
  .
  name: (identifier) @name
  (function_body)) @function

; `constructor(...) : this(...)`
(secondary_constructor
  "constructor" @name) @method

(class_declaration name: (identifier) @name) @scope
(object_declaration name: (identifier) @name) @scope
