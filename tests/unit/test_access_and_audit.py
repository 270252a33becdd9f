"""The authorization matrix and the audit hash chain: pure rules, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from shelflife.domain.access import ROLE_PERMISSIONS, Permission, Role, allows, parse_role, require
from shelflife.domain.audit import GENESIS_HASH, AuditEntry, next_entry, verify_chain
from shelflife.domain.errors import Forbidden, InvalidInput

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

PII_PERMISSIONS = {Permission.VIEW_ORDERS, Permission.RETRIEVE, Permission.ADD_NOTE}


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (role, permission, permission in ROLE_PERMISSIONS[role])
        for role in Role
        for permission in Permission
    ],
)
def test_require_follows_the_matrix(role: Role, permission: Permission, allowed: bool) -> None:
    if allowed:
        require(role, permission)
    else:
        with pytest.raises(Forbidden, match=role.value):
            require(role, permission)


def test_support_never_sees_personal_data_and_agents_never_run_the_installation() -> None:
    assert not any(allows(Role.SUPPORT, p) for p in PII_PERMISSIONS)
    assert allows(Role.SUPPORT, Permission.SWITCH_FEATURE)
    assert all(allows(Role.AGENT, p) for p in PII_PERMISSIONS)
    for admin_only in (Permission.MANAGE_USERS, Permission.VIEW_AUDIT, Permission.SWITCH_FEATURE):
        assert not allows(Role.AGENT, admin_only)
    assert all(allows(Role.ADMIN, p) for p in Permission)


def test_parse_role_accepts_the_three_roles_and_names_them_on_error() -> None:
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(InvalidInput, match="agent, admin, support"):
        parse_role("root")


def _chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            next_entry(
                entries[-1] if entries else None,
                T + timedelta(minutes=i),
                "anna",
                "order.retrieved",
                f"302-000000{i}-1234567",
                {"reason": f"return {i}"},
            )
        )
    return entries


def test_a_chain_links_each_entry_to_the_one_before() -> None:
    entries = _chain(5)
    assert entries[0].previous_hash == GENESIS_HASH
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.previous_hash == a.hash for a, b in pairwise(entries))
    check = verify_chain(entries)
    assert (check.intact, check.checked, check.broken_at) == (True, 5, None)


def test_a_changed_entry_is_found_where_it_was_changed() -> None:
    entries = _chain(5)
    entries[2] = replace(entries[2], detail={"reason": "something else"})
    check = verify_chain(entries)
    assert (check.intact, check.checked, check.broken_at) == (False, 2, 3)
    assert check.reason == "was changed after it was written"


def test_a_removed_entry_breaks_the_chain_at_the_gap() -> None:
    entries = _chain(5)
    del entries[3]
    check = verify_chain(entries)
    assert (check.intact, check.broken_at, check.reason) == (False, 5, "entry 4 is missing")


def test_a_rewritten_tail_with_recomputed_hashes_still_breaks_at_the_first_link() -> None:
    entries = _chain(4)
    forged = replace(entries[1], actor="mallory")
    forged = replace(forged, hash=forged.computed_hash())
    entries[1] = forged
    check = verify_chain(entries)
    assert (check.intact, check.broken_at) == (False, 3)
    assert check.reason == "does not link to the entry before it"


def test_after_a_purge_the_rest_verifies_from_the_recorded_anchor_only() -> None:
    entries = _chain(6)
    anchor = entries[2].hash  # entries 1-3 purged; the purge recorded the last removed hash
    assert verify_chain(entries[3:], anchor=anchor).intact
    assert not verify_chain(entries[4:], anchor=anchor).intact  # one more removed silently
    assert not verify_chain(entries[3:]).intact  # without the anchor it does not link
