; Python: functions, methods (functions inside a class), classes as scopes.
; A docstring is the first statement of the body when it is a string.

(function_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc))) @function

(function_definition
  name: (identifier) @name
  body: (block) @body) @function

(class_definition
  name: (identifier) @name) @scope
