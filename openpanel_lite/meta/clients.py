"""API clients (write/read/root) of a project; only a scrypt hash of each secret is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

import msgspec

from openpanel_lite.meta.clock import from_ms, to_ms, utcnow
from openpanel_lite.meta.db import MetaDB, Row
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.secrets import hash_secret, new_client_secret, verify_secret
from openpanel_lite.meta.validation import normalize_name

ClientType = Literal["write", "read", "root"]
CLIENT_TYPES: tuple[ClientType, ...] = get_args(ClientType)


class Client(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    type: ClientType
    project_id: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


_COLUMNS = "id, name, type, project_id, created_at, revoked_at"


def _client(row: Row) -> Client:
    return Client(
        id=row[0],
        name=row[1],
        type=row[2],
        project_id=row[3],
        created_at=from_ms(row[4]),
        revoked_at=from_ms(row[5]) if row[5] is not None else None,
    )


def create_client(
    db: MetaDB,
    project_id: str,
    *,
    type: ClientType = "write",
    name: str | None = None,
    now: datetime | None = None,
) -> tuple[Client, str]:
    """A new client and its plaintext secret. The secret is returned this once and never stored.

    The default name is "<project name> Client", as OpenPanel names a project's first client.
    """
    if type not in CLIENT_TYPES:
        raise MetaError(f"client type must be one of {', '.join(CLIENT_TYPES)}, not {type!r}")
    secret = new_client_secret()
    # Hash outside the transaction: scrypt takes tens of milliseconds and needs no lock.
    secret_hash = hash_secret(secret)
    at = to_ms(now or utcnow())
    client_id = str(uuid.uuid4())
    with db.transaction():
        project = db.query_one("SELECT name FROM projects WHERE id = :id", {"id": project_id})
        if project is None:
            raise MetaError(f"no project with id {project_id!r}")
        client_name = normalize_name(name, what="client name") if name else f"{project[0]} Client"
        db.execute(
            """-- sql
            INSERT INTO clients (id, name, type, project_id, secret_hash, created_at)
            VALUES (:id, :name, :type, :project_id, :secret_hash, :at)""",
            {
                "id": client_id,
                "name": client_name,
                "type": type,
                "project_id": project_id,
                "secret_hash": secret_hash,
                "at": at,
            },
        )
    client = Client(
        id=client_id,
        name=client_name,
        type=type,
        project_id=project_id,
        created_at=from_ms(at),
        revoked_at=None,
    )
    return client, secret


def get_client(db: MetaDB, client_id: str) -> Client | None:
    """The client, revoked or not (check ``.active``); None for unknown or malformed ids."""
    row = db.query_one(f"SELECT {_COLUMNS} FROM clients WHERE id = :id", {"id": client_id})
    return _client(row) if row else None


def list_clients(db: MetaDB, project_id: str, *, include_revoked: bool = True) -> list[Client]:
    rows = db.query(
        f"""-- sql
        SELECT {_COLUMNS} FROM clients
        WHERE project_id = :project_id AND (:include_revoked OR revoked_at IS NULL)
        ORDER BY created_at, id""",
        {"project_id": project_id, "include_revoked": int(include_revoked)},
    )
    return [_client(r) for r in rows]


def authenticate_client(db: MetaDB, client_id: str, secret: str) -> Client | None:
    """The active client whose secret matches, else None. Costs one scrypt (~30-50 ms): cache results."""
    row = db.query_one(
        f"SELECT {_COLUMNS}, secret_hash FROM clients WHERE id = :id AND revoked_at IS NULL",
        {"id": client_id},
    )
    if row is None or not verify_secret(secret, str(row[6])):
        return None
    return _client(row)


def revoke_client(db: MetaDB, client_id: str, *, now: datetime | None = None) -> Client:
    """Mark a client revoked (idempotent: the first revocation time is kept)."""
    with db.transaction():
        db.execute(
            "UPDATE clients SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
            {"at": to_ms(now or utcnow()), "id": client_id},
        )
        client = get_client(db, client_id)
    if client is None:
        raise MetaError(f"no client with id {client_id!r}")
    return client
