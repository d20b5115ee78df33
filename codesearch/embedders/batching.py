"""The one batching routine: group inputs, longest first, under a token budget.

Two costs are budgeted. A padded batch costs count x longest (the plain and CPU loops pad
every row to the batch's longest); a packed batch costs its real tokens (the GPU path lays
sequences end to end, and the multi-GPU and remote paths send tasks of real tokens).
Sorting longest first keeps padding small and shows the worst-case memory in the first batch.
"""

from __future__ import annotations


def group_by_budget(lengths: list[int], budget: int, padded: bool, max_items: int | None = None) -> list[list[int]]:
    """Indices into `lengths` in batches whose cost stays under `budget` (a single input over it
    is a batch of its own). Every index appears exactly once."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    cap = max_items or len(lengths) or 1
    batches: list[list[int]] = []
    current: list[int] = []
    cost = 0  # padded: the batch's longest row (its first); packed: its real tokens
    for i in order:
        n = lengths[i]
        if current:
            after = cost * (len(current) + 1) if padded else cost + n
            if after > budget or len(current) >= cap:
                batches.append(current)
                current, cost = [], 0
        if not current:
            cost = n
        elif not padded:
            cost += n
        current.append(i)
    if current:
        batches.append(current)
    return batches
