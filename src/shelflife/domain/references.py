"""How people refer to a buyer: `C<id>`, the reference `compliance` prints and `find` accepts.

A buyer has no number of its own that survives masking (the customer number is PII and is
masked), so the reference is the record's id. It names no PII and stays valid for good.
"""

from __future__ import annotations

import re

_CUSTOMER_REF = re.compile(r"[Cc]([1-9][0-9]{0,17})")


def customer_ref(customer_id: int) -> str:
    return f"C{customer_id}"


def parse_customer_ref(text: str) -> int | None:
    """The customer id in a reference such as `C42` (or `c42`); None for anything else."""
    match = _CUSTOMER_REF.fullmatch(text.strip())
    return int(match.group(1)) if match else None
