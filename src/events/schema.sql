-- Platform event feeds: the sync worker subscribes to each feed's topic
-- (/event/Name__e) with its owner's user mapping and inserts every event
-- into the feed's table, storing the replay id in the same transaction, so
-- that each event lands once whatever stops the worker. Users read their
-- own feeds; salesforce.event_feed and event_feed_drop manage them.
CREATE TABLE @extschema@.event_feeds (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner oid NOT NULL,
    server text NOT NULL,
    -- The event's API name, Signup__e; its topic is /event/Signup__e.
    topic text NOT NULL,
    target regclass NOT NULL,
    -- The last stored event's replay id: the stream resumes after it.
    replay_id bytea,
    -- starting, streaming or failing (with error).
    status text NOT NULL DEFAULT 'starting',
    error text,
    events bigint NOT NULL DEFAULT 0,
    heard_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, topic, target)
);
ALTER TABLE @extschema@.event_feeds ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_feeds_of_own_roles ON @extschema@.event_feeds FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
REVOKE ALL ON @extschema@.event_feeds FROM PUBLIC;
GRANT SELECT ON @extschema@.event_feeds TO PUBLIC;
