-- sql
-- Time on page (storage/rows.py ViewDurationRow): ingest adds a row when a view's next view is known.
-- Signed rows: aggregate with sum(sign * duration) / sum(sign).
CREATE TABLE view_durations (
    project_id VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    origin     VARCHAR NOT NULL,
    path       VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    duration   UBIGINT NOT NULL,
    sign       TINYINT NOT NULL
);

-- Views stored before this table existed: each view's time to the first later view of its session
-- (views at the same millisecond share their next one), the rule ingest follows from now on.
INSERT INTO view_durations
SELECT project_id, session_id, origin, path, created_at, next_ms - at_ms, 1
FROM (
    SELECT project_id, session_id, origin, path, created_at, epoch_ms(created_at) AS at_ms,
        min(epoch_ms(created_at)) OVER (
            PARTITION BY project_id, session_id ORDER BY epoch_ms(created_at)
            RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ) AS next_ms
    FROM events
    WHERE name = 'screen_view' AND session_id <> ''
)
WHERE next_ms IS NOT NULL;
