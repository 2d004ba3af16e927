-- The size orders of the API's image listing (`GET /api/images?sort=largest|smallest`)
-- page with a keyset on (bytes, id):
--
--   ... ORDER BY i.bytes DESC, i.id DESC  with  (i.bytes, i.id) < ($1, $2)   (largest)
--   ... ORDER BY i.bytes ASC,  i.id ASC   with  (i.bytes, i.id) > ($1, $2)   (smallest)
--
-- One btree on (bytes, id) serves both (largest is a backward scan) and the row
-- comparison is an index condition, so a page reads its LIMIT rows instead of sorting
-- every matching image. The id orders use the unique index on id.
--
-- Not a partial index on the listing's `NOT deleted AND object_key IS NOT NULL`: those
-- columns change when an image is stored or deleted, and a predicate on them would
-- cost the index writer its HOT updates. The few deleted or unstored rows are filtered
-- while scanning.

CREATE INDEX images_bytes_id ON images (bytes, id);
