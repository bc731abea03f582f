-- sql
-- The event store's tables, column for column as storage/columns.py (tests/test_store_duckdb.py
-- compares DESCRIBE with it). Timestamps are UTC. No indexes or keys on events: they slow every
-- append and multiply the memory WAL replay needs (reliability §2.3).

-- Append-only; rows are read in (project_id, created_at) ranges.
CREATE TABLE events (
    id              UUID NOT NULL,
    name            VARCHAR NOT NULL,
    sdk_name        VARCHAR NOT NULL,
    sdk_version     VARCHAR NOT NULL,
    device_id       VARCHAR NOT NULL,
    profile_id      VARCHAR NOT NULL,
    project_id      VARCHAR NOT NULL,
    session_id      VARCHAR NOT NULL,
    groups          VARCHAR[] NOT NULL,
    path            VARCHAR NOT NULL,
    origin          VARCHAR NOT NULL,
    referrer        VARCHAR NOT NULL,
    referrer_name   VARCHAR NOT NULL,
    referrer_type   VARCHAR NOT NULL,
    revenue         UBIGINT NOT NULL,
    duration        UBIGINT NOT NULL,
    properties      MAP(VARCHAR, VARCHAR) NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    country         VARCHAR NOT NULL,
    city            VARCHAR NOT NULL,
    region          VARCHAR NOT NULL,
    longitude       FLOAT,
    latitude        FLOAT,
    os              VARCHAR NOT NULL,
    os_version      VARCHAR NOT NULL,
    browser         VARCHAR NOT NULL,
    browser_version VARCHAR NOT NULL,
    device          VARCHAR NOT NULL,
    brand           VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    imported_at     TIMESTAMP
);

-- One row per upsert; the newest last_seen_at per (project_id, id) is current.
CREATE TABLE profiles (
    id           VARCHAR NOT NULL,
    is_external  BOOLEAN NOT NULL,
    first_name   VARCHAR NOT NULL,
    last_name    VARCHAR NOT NULL,
    email        VARCHAR NOT NULL,
    avatar       VARCHAR NOT NULL,
    properties   MAP(VARCHAR, VARCHAR) NOT NULL,
    project_id   VARCHAR NOT NULL,
    groups       VARCHAR[] NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);

-- Versioned rows: aggregate with sum(sign), like ClickHouse VersionedCollapsingMergeTree.
CREATE TABLE sessions (
    id                VARCHAR NOT NULL,
    project_id        VARCHAR NOT NULL,
    profile_id        VARCHAR NOT NULL,
    device_id         VARCHAR NOT NULL,
    groups            VARCHAR[] NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    ended_at          TIMESTAMP NOT NULL,
    is_bounce         BOOLEAN NOT NULL,
    entry_origin      VARCHAR NOT NULL,
    entry_path        VARCHAR NOT NULL,
    exit_origin       VARCHAR NOT NULL,
    exit_path         VARCHAR NOT NULL,
    screen_view_count UINTEGER NOT NULL,
    revenue           DOUBLE NOT NULL,
    event_count       UINTEGER NOT NULL,
    duration          UINTEGER NOT NULL,
    country           VARCHAR NOT NULL,
    region            VARCHAR NOT NULL,
    city              VARCHAR NOT NULL,
    longitude         FLOAT,
    latitude          FLOAT,
    device            VARCHAR NOT NULL,
    brand             VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,
    browser           VARCHAR NOT NULL,
    browser_version   VARCHAR NOT NULL,
    os                VARCHAR NOT NULL,
    os_version        VARCHAR NOT NULL,
    utm_medium        VARCHAR NOT NULL,
    utm_source        VARCHAR NOT NULL,
    utm_campaign      VARCHAR NOT NULL,
    utm_content       VARCHAR NOT NULL,
    utm_term          VARCHAR NOT NULL,
    referrer          VARCHAR NOT NULL,
    referrer_name     VARCHAR NOT NULL,
    referrer_type     VARCHAR NOT NULL,
    sign              TINYINT NOT NULL,
    version           UBIGINT NOT NULL
);

-- One row per change; the highest version per (project_id, id) is current.
CREATE TABLE groups (
    id         VARCHAR NOT NULL,
    project_id VARCHAR NOT NULL,
    type       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    properties MAP(VARCHAR, VARCHAR) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    version    UBIGINT NOT NULL,
    deleted    UTINYINT NOT NULL
);

-- Requests refused as bots (openpanel-facts §3.10).
CREATE TABLE events_bots (
    id         UUID NOT NULL,
    project_id VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    type       VARCHAR NOT NULL,
    path       VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- The durable spool's high-water mark, written in the same transaction as the rows it covers
-- (reliability §0.2). Exactly one row.
CREATE TABLE _spool_watermark (
    watermark UBIGINT NOT NULL
);
INSERT INTO _spool_watermark VALUES (0);
