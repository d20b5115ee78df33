; SQL: CREATE [OR REPLACE] FUNCTION and CREATE PROCEDURE. The definition is wrapped in a
; `statement` node (a wrapper type), whose preceding `--` comments are its doc. A schema
; qualifier (`public.f`) is not part of the name. Bodies the grammar cannot parse
; (MySQL `BEGIN ... END` without dollar quotes, T-SQL) are recovered from the text, see
; `recover_start` in languages.py.

(create_function
  (object_reference name: (identifier) @name)
  (function_body)? @body) @function

(create_procedure
  (object_reference name: (identifier) @name)
  (procedure_body)? @body) @function
