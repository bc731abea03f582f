-- sql
-- The Pages table's views (storage/rows.py PageViewRow): ingest adds one per screen_view, with the
-- time of the previous view of the same page in the same session. Signed rows: aggregate with sum(sign).
CREATE TABLE page_views (
    project_id  VARCHAR NOT NULL,
    session_id  VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    origin      VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    previous_at TIMESTAMP NOT NULL,
    sign        TINYINT NOT NULL
);

-- Views stored before this table existed, by the rule ingest follows from now on (views at the same
-- millisecond get one another as previous, so one of them counts, whichever).
INSERT INTO page_views
SELECT project_id, session_id, profile_id, origin, path, created_at,
    CASE WHEN session_id = '' THEN TIMESTAMP '1970-01-01' ELSE coalesce(
        lag(created_at) OVER (PARTITION BY project_id, session_id, origin, path ORDER BY created_at),
        TIMESTAMP '1970-01-01'
    ) END,
    1
FROM events
WHERE name = 'screen_view';
