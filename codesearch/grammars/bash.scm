; Bash: `function name { ... }`, `name() { ... }` and `name() ( ... )` (subshell body).
; Doc comments are the `#` lines directly above.

(function_definition
  name: (word) @name
  body: (_) @body) @function
