-- 001: the initial metadata schema.
-- Conventions: every *_at column is INTEGER milliseconds since the Unix epoch, UTC.
-- JSON columns hold TEXT checked with json_valid/json_type (SQLite has no arrays or JSONB).
-- Booleans are INTEGER 0/1. Tables are STRICT so a wrong type is an error, not a silent cast.
-- A migration file must not contain BEGIN/COMMIT: MetaDB.migrate wraps each file in a transaction.

CREATE TABLE users (
    id TEXT PRIMARY KEY,                       -- uuid4
    email TEXT NOT NULL COLLATE NOCASE UNIQUE, -- stored lower-cased; NOCASE guards against mixed-case rows
    name TEXT,
    password_hash TEXT NOT NULL,               -- argon2id PHC string, never the password
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE projects (
    id TEXT PRIMARY KEY,                       -- slug of the name, "-NNNN" appended on collision
    name TEXT NOT NULL,
    domain TEXT,                               -- normalised origin, e.g. https://example.com
    timezone TEXT NOT NULL DEFAULT 'UTC',      -- IANA name, validated with zoneinfo
    cors TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(cors) AND json_type(cors) = 'array'),
    filters TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(filters) AND json_type(filters) = 'array'),
    settings TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings) AND json_type(settings) = 'object'),
    allow_unsafe_revenue_tracking INTEGER NOT NULL DEFAULT 0 CHECK (allow_unsafe_revenue_tracking IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id)
) STRICT, WITHOUT ROWID;

-- "Which projects may this user see?" is asked on every dashboard request.
CREATE INDEX project_members_user_id ON project_members(user_id);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,                       -- uuid4, sent as the openpanel-client-id header
    name TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'write' CHECK (type IN ('write', 'read', 'root')),
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,                 -- "<32-hex salt>.<hex scrypt>", never the secret
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX clients_project_id ON clients(project_id);

-- Dashboard login sessions. id is the SHA-256 (hex) of the cookie token, so a copy of this file
-- cannot be replayed as a cookie.
CREATE TABLE login_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    csrf_seed TEXT NOT NULL                    -- random; CSRF token = HMAC(auth secret key, seed)
) STRICT;

CREATE INDEX login_sessions_user_id ON login_sessions(user_id);
CREATE INDEX login_sessions_expires_at ON login_sessions(expires_at);

-- Failed-login counters, bumped atomically (UPSERT … RETURNING) before a password is verified.
-- key_hash is the SHA-256 of a caller key such as "email:a@b.c".
CREATE TABLE login_attempts (
    key_hash TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    attempts INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Daily visitor-hash salts (current + previous); rows older than 48 h are deleted.
CREATE TABLE salts (
    salt TEXT PRIMARY KEY,                     -- 16 random bytes, hex
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX salts_created_at ON salts(created_at);

-- Outgoing webhooks. No signing secret is stored: the key is derived as
-- HMAC-SHA256(auth secret key, 'webhook:' || id || ':' || secret_nonce), so this file alone cannot
-- forge deliveries, and rotating the key means writing a new nonce.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(events) AND json_type(events) = 'array'),
    secret_nonce TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhooks_project_id ON webhooks(project_id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    status INTEGER,                            -- last HTTP status; NULL until attempted or on network error
    response TEXT,                             -- truncated response body or error text
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,                   -- NULL once delivered or given up
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_webhook_id ON webhook_deliveries(webhook_id);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries(created_at);
CREATE INDEX webhook_deliveries_next_attempt_at ON webhook_deliveries(next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

CREATE TABLE dashboards (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX dashboards_project_id ON dashboards(project_id);

-- Saved reports, shaped after OpenPanel's Report model (openpanel-facts §5.10).
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    dashboard_id TEXT REFERENCES dashboards(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    interval TEXT NOT NULL DEFAULT 'day'
        CHECK (interval IN ('minute', 'hour', 'day', 'week', 'month')),
    range TEXT NOT NULL DEFAULT '30d'
        CHECK (range IN ('30min', 'lastHour', 'last24h', 'today', 'yesterday', '7d', '30d', '3m', '6m',
                         '12m', 'monthToDate', 'lastMonth', 'yearToDate', 'lastYear', 'custom')),
    chart_type TEXT NOT NULL DEFAULT 'linear'
        CHECK (chart_type IN ('linear', 'bar', 'histogram', 'pie', 'metric', 'area', 'map', 'funnel',
                              'retention', 'conversion', 'sankey')),
    line_type TEXT NOT NULL DEFAULT 'monotone',
    breakdowns TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(breakdowns) AND json_type(breakdowns) = 'array'),
    series TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(series) AND json_type(series) = 'array'),
    global_filters TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(global_filters) AND json_type(global_filters) = 'array'),
    formula TEXT,
    unit TEXT,
    metric TEXT NOT NULL DEFAULT 'sum' CHECK (metric IN ('count', 'sum', 'average', 'min', 'max')),
    previous INTEGER NOT NULL DEFAULT 0 CHECK (previous IN (0, 1)),
    criteria TEXT CHECK (criteria IN ('on', 'on_or_after')),
    funnel_group TEXT CHECK (funnel_group IN ('session_id', 'profile_id')),
    funnel_window REAL,                        -- hours; NULL means the default (24)
    options TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(options) AND json_type(options) = 'object'),
    visible_series TEXT CHECK (visible_series IS NULL OR json_type(visible_series) = 'array'),
    start_date TEXT,                           -- as entered, in the project timezone; only for range 'custom'
    end_date TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX reports_project_id ON reports(project_id);
CREATE INDEX reports_dashboard_id ON reports(dashboard_id);
