; TypeScript: functions, generators, class and object-literal methods, functions bound
; to a name (`const f = (a: T) => ...`, `obj.m = function`), anonymous default exports.
; `export` around a definition is a wrapper (see languages.py): it is in the range.
; Overload signatures, abstract methods and interface members are not units.

; function f() {} / function* g() {}
(function_declaration
  name: (identifier) @name
  body: (statement_block) @body) @function

(generator_function_declaration
  name: (identifier) @name
  body: (statement_block) @body) @function

; const f = (a) => ..., let g = function () {}, var h = function* () {}:
; the whole declaration is the unit, so its range starts at `const`.
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function body: (_) @body)
            (function_expression body: (_) @body)
            (generator_function body: (_) @body)])) @function

(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function body: (_) @body)
            (function_expression body: (_) @body)
            (generator_function body: (_) @body)])) @function

; Methods of classes and of object literals: { write(x) {...} }, get/set, static, *gen()
(method_definition
  name: [(property_identifier) (private_property_identifier)] @name
  body: (statement_block) @body) @method

(method_definition
  name: (string (string_fragment) @name)
  body: (statement_block) @body) @method

; Object-literal properties holding a function: { key: function () {}, 'k': () => {} }
(pair
  key: [(property_identifier) (string (string_fragment))] @name
  value: [(arrow_function body: (_) @body)
          (function_expression body: (_) @body)
          (generator_function body: (_) @body)]) @method

; Class fields holding a function: class A { handle = (e: Event) => {} }
(public_field_definition
  name: [(property_identifier) (private_property_identifier)] @name
  value: [(arrow_function body: (_) @body)
          (function_expression body: (_) @body)]) @method

; Assignments: obj.method = function () {}, Foo.prototype.bar = () => {} at the top
; level, and this.handler = function () {} anywhere (`this` and `prototype` are dropped
; from the qualifier by the engine). Callbacks assigned inside functions are not units.
(program
  (expression_statement
    (assignment_expression
      left: (member_expression
        object: (_) @_object
        property: (property_identifier)) @name
      right: [(arrow_function body: (_) @body)
              (function_expression body: (_) @body)
              (generator_function body: (_) @body)])
    (#not-eq? @_object "module")) @method)

(expression_statement
  (assignment_expression
    left: (member_expression
      object: (this)
      property: (property_identifier)) @name
    right: [(arrow_function body: (_) @body)
            (function_expression body: (_) @body)
            (generator_function body: (_) @body)])) @method

; module.exports = function () {} names the function after the module file
(expression_statement
  (assignment_expression
    left: (member_expression
      object: (identifier) @_module
      property: (property_identifier) @_exports)
    right: [(arrow_function body: (_) @body)
            (function_expression body: (_) @body)])
  (#eq? @_module "module")
  (#eq? @_exports "exports")
  (#set! name_from "file")) @function

; export default function () {} / export default (a) => {}: anonymous, named after the file
(export_statement
  value: [(arrow_function body: (_) @body)
          (function_expression body: (_) @body)
          (generator_function body: (_) @body)] @function
  (#set! name_from "file"))

; export default cond && function adapter(config) {...}: a definition guarded by a
; feature test; anonymous ones (`cond && (async (config) => {...})`) take the file name
(export_statement
  value: (binary_expression
    right: [(function_expression name: (identifier) @name body: (_) @body)
            (generator_function name: (identifier) @name body: (_) @body)])) @function

(export_statement
  value: (binary_expression
    right: [(arrow_function body: (_) @body)
            (function_expression !name body: (_) @body)
            (parenthesized_expression
              [(arrow_function body: (_) @body)
               (function_expression !name body: (_) @body)])])
  (#set! name_from "file")) @function

; Named function expressions passed as arguments:
; wrapAsync(async function dispatchRequest(resolve, reject) {...})
(arguments
  [(function_expression name: (identifier) @name body: (_) @body)
   (generator_function name: (identifier) @name body: (_) @body)] @function)

; export default class {}: anonymous class, named after the file
(export_statement
  value: (class body: (class_body)) @scope
  (#set! name_from "file"))

; Scopes: classes, abstract classes, interfaces (their method signatures, like
; abstract methods and overload signatures, have no body and are not units)
(class_declaration
  name: (type_identifier) @name) @scope

(abstract_class_declaration
  name: (type_identifier) @name) @scope

(interface_declaration
  name: (type_identifier) @name) @scope

(class
  name: (type_identifier) @name) @scope

; const Foo = class {...} / const api = { get() {...} }: the variable names the scope
(variable_declarator
  name: (identifier) @name
  value: [(class !name) (object)]) @scope

; namespace Geo.Util { ... }: the body is tagged, not the `internal_module` node, so
; functions inside stay functions (qualname `Geo.Util.f`)
(internal_module
  name: [(identifier) (nested_identifier)] @name
  body: (statement_block) @scope)
