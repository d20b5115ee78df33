; Python: functions, methods (functions inside a class), classes as scopes.
; A docstring is the first statement of the body when it is a string (of a class too: its
; methods carry its summary, extract.Unit.owner_doc).

(function_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc))) @function

(function_definition
  name: (identifier) @name
  body: (block) @body) @function

(class_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc))) @scope

(class_definition
  name: (identifier) @name) @scope
