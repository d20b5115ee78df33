; Rust: `fn` items with a body (trait method signatures and extern declarations have
; none and are not units). Functions in `impl Type` / `impl Trait for Type` are methods
; of `Type`; trait default methods belong to the trait; modules qualify their functions.
; `#[...]` attributes are separate nodes above the item: not in the range, but the `///`
; doc comment above them is still found (attribute_types in languages.py).

(function_item
  name: (identifier) @name
  body: (block) @body) @function

; impl Type / impl<T> Stack<T> / impl path::Type / impl Trait for Type: named after Type
(impl_item
  type: [(type_identifier) @name
         (generic_type type: (type_identifier) @name)
         (scoped_type_identifier name: (type_identifier) @name)
         (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
         (reference_type type: (type_identifier) @name)]) @scope

(trait_item
  name: (type_identifier) @name) @scope

(mod_item
  name: (identifier) @name
  body: (declaration_list)) @scope

(struct_item
  name: (type_identifier) @name) @scope

(enum_item
  name: (type_identifier) @name) @scope

(union_item
  name: (type_identifier) @name) @scope
