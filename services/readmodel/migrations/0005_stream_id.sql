-- The stream's id replaces its creation time as its identity.
--
-- nats-server does not keep a stream's creation time: an update of the stream
-- rewrites it with the time the server loaded the stream's files, so after a restart
-- the same stream reports a new time, and a database that recorded the old one
-- refused its own stream. Streams now carry an id in their metadata
-- (`imgcrawl.stream-id`), written once at creation and never changed; this is what a
-- database records. Rows recorded by earlier releases keep their creation time and
-- get the id when a writer first recognises the stream (docs/failure-handling.md,
-- "Stream identity"). New rows record no creation time.

ALTER TABLE projection_meta
    ADD COLUMN stream_id text,
    ALTER COLUMN stream_created DROP NOT NULL,
    ADD CONSTRAINT projection_meta_identity CHECK (stream_id IS NOT NULL OR stream_created IS NOT NULL);
