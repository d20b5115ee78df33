; C: function definitions (prototypes are `declaration` nodes and are not units). The
; name sits inside the declarator: `f(...)`, `*f(...)`, `**f(...)`, and `(*f(...))(...)`
; for a function returning a function pointer. C has nothing that scopes a function.

(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)
  body: (compound_statement) @body) @function

; char *f(...) / struct node *f(...)
(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (identifier) @name))
  body: (compound_statement) @body) @function

; char **f(...)
(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: (identifier) @name)))
  body: (compound_statement) @body) @function

; void (*f(int))(int): returns a function pointer
(function_definition
  declarator: (function_declarator
    declarator: (parenthesized_declarator
      (pointer_declarator
        declarator: (function_declarator
          declarator: (identifier) @name))))
  body: (compound_statement) @body) @function
