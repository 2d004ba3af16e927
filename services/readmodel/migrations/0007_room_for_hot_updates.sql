-- Room on every page for the projection's updates, so that they are HOT.
--
-- A row of `images` is rewritten by every batch that downloads its bytes again (a later
-- `last_seen_at`) and once more when it is stored (`object_key`); a row of
-- `image_sources` moves `downloaded` -> `stored` (`status`, `stored_at`). None of those
-- columns is indexed, so PostgreSQL can keep the new row version on the same page and
-- skip every index (a heap-only tuple), but only if the page has room: at the default
-- fillfactor of 100 a replay fills its pages to the brim, each update lands on another
-- page, and `images` has five indexes to update. Storage only: the rows are the same.
-- (The `discovered` -> `downloaded` move of `image_sources` sets the indexed `sha256`
-- and is never HOT; the room also keeps its new version on the same page.)
-- Only pages written from now on leave the room; `VACUUM FULL` rewrites old ones.

ALTER TABLE images SET (fillfactor = 50);
ALTER TABLE image_sources SET (fillfactor = 80);
