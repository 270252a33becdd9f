"""Who may do what: roles and the permissions each grants, in one table.

Least privilege, as Amazon's data protection policy asks for features that show PII: agents see
and retrieve buyers' data, support switches the feature and sees counts only, admins do both and
run the installation. The web pages, the API and any later entry point ask this table, never
a role name, so the rules cannot drift apart.
"""

from __future__ import annotations

import enum

from shelflife.domain.errors import Forbidden, InvalidInput


class Role(enum.StrEnum):
    AGENT = "agent"
    ADMIN = "admin"
    SUPPORT = "support"


class Permission(enum.StrEnum):
    VIEW_ORDERS = "view orders and buyers' personal data"
    RETRIEVE = "retrieve masked orders"
    ADD_NOTE = "add customer history notes"
    EDIT_ORDERS = "edit addresses of unmasked orders"
    CREATE_DOCUMENTS = "create returns, replacement orders and credits"
    VIEW_COUNTS = "see counts per state (no personal data)"
    SWITCH_FEATURE = "switch retention per shop"
    CHANGE_SHOP_SETTINGS = "change shop settings"
    VIEW_DASHBOARD = "see the dashboard"
    VIEW_AUDIT = "read the audit log"
    MANAGE_RUNS = "start and inspect runs"
    MANAGE_USERS = "manage users and tokens"
    IMPORT = "import orders"
    EXPORT = "export invoices and accounting data"


_AGENT = frozenset(
    {
        Permission.VIEW_ORDERS,
        Permission.RETRIEVE,
        Permission.ADD_NOTE,
        Permission.EDIT_ORDERS,
        Permission.CREATE_DOCUMENTS,
    }
)
_SUPPORT = frozenset(
    {Permission.VIEW_COUNTS, Permission.SWITCH_FEATURE, Permission.CHANGE_SHOP_SETTINGS}
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.SUPPORT: _SUPPORT,
    Role.ADMIN: frozenset(Permission),
}
"""The authorization matrix. Support never gets VIEW_ORDERS: it sees counts, never PII."""


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def require(role: Role, permission: Permission) -> None:
    """Raise Forbidden unless `role` grants `permission`; the message names both, no data."""
    if not allows(role, permission):
        raise Forbidden(f"the role {role.value!r} may not {permission.value}")


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"role: must be one of {', '.join(r.value for r in Role)}") from None
