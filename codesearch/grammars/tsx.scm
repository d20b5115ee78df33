; inherits: typescript
; TSX is TypeScript with JSX: the TypeScript patterns apply unchanged (JSX adds no
; function shapes of its own; components are functions or arrow functions bound to names).
