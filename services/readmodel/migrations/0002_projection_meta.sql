-- Which stream this database projects.
--
-- A projection is only meaningful against the stream it was built from: sequences,
-- ids and the checkpoint are positions in that stream. The first batch a writer
-- commits records the stream's name and creation time (from the server's stream
-- info) here, in the same transaction as the rows; every later batch, of the live
-- index or of a replay, checks it and refuses a database that belongs to another
-- stream (one deleted and created again, another cluster's) instead of mixing data.
-- One row per database; the values come from the stream, so two replays of one
-- stream hold the same row.

CREATE TABLE projection_meta (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stream         text NOT NULL,
    stream_created timestamptz NOT NULL
);
