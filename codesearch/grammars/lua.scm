; Lua: `function f()`, `function M.f()`, `function M:f()` (qualified by M),
; `local function f()`, `local f = function()`, `M.f = function()` and table fields
; `{ f = function() }`. Doc comments are the `--`/`---` lines directly above.

(function_declaration
  name: (_) @name
  body: (_)? @body) @function

; `local f = function() ... end`: the whole declaration is the unit
(variable_declaration
  (assignment_statement
    (variable_list . name: (_) @name)
    (expression_list . value: (function_definition body: (_)? @body)))) @function

; `M.f = function() ... end` (not inside a `local` declaration)
(chunk
  (assignment_statement
    (variable_list . name: (_) @name)
    (expression_list . value: (function_definition body: (_)? @body))) @function)
(block
  (assignment_statement
    (variable_list . name: (_) @name)
    (expression_list . value: (function_definition body: (_)? @body))) @function)

(field
  name: (identifier) @name
  value: (function_definition body: (_)? @body)) @function
