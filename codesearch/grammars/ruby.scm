; Ruby: `def` methods, singleton methods (`def self.x`, `def Mod.x`); classes and
; modules as scopes (`class Foo::Bar` is qualified). Methods inside `class << self`
; belong to the enclosing class. Doc comments are the `#` lines above.

(method
  name: (_) @name
  body: (_)? @body) @function

; `def self.build`: owned by the enclosing class
(singleton_method
  object: (self)
  name: (_) @name
  body: (_)? @body) @method

; `def Config.load`: owned by the named constant
(singleton_method
  object: (constant) @receiver
  name: (_) @name
  body: (_)? @body) @method

(class name: (_) @name) @scope
(module name: (_) @name) @scope
