; Go: functions and methods. A method's receiver type gives its qualname `Type.Method`
; (`*T`, `T[K]` and `*T[K]` all give `T`). Structs and interfaces are scopes; interface
; method specs have no body and are not units.

(function_declaration
  name: (identifier) @name
  body: (block) @body) @function

; func (s Stack) Len() / func (s *Stack) Push() / func (m Map[K, V]) Get() / func (*Stack[T]) Pop()
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [(type_identifier) @receiver
             (pointer_type (type_identifier) @receiver)
             (generic_type type: (type_identifier) @receiver)
             (pointer_type (generic_type type: (type_identifier) @receiver))]))
  name: (field_identifier) @name
  body: (block) @body) @method

; package-level `var handler = func(...) {...}`: the whole declaration is the unit
(source_file
  (var_declaration
    (var_spec
      name: (identifier) @name
      value: (expression_list . (func_literal body: (block) @body) .))) @function)

; inside `var ( ... )`: the spec is the unit
(source_file
  (var_declaration
    (var_spec_list
      (var_spec
        name: (identifier) @name
        value: (expression_list . (func_literal body: (block) @body) .)) @function)))

(type_spec
  name: (type_identifier) @name
  type: [(struct_type) (interface_type)]) @scope
