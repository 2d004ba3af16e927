-- No foreign keys to `jobs`.
--
-- `pages`, `image_sources` and `rejections` referenced `jobs (job_id)`, so every row
-- inserted fired a referential-integrity check (a lookup in `jobs` and a row lock on
-- it). The writer already guarantees what the keys checked: it applies an event of a
-- job only if the job's request was applied at a lower sequence and drops the others
-- as orphans (`write::batch::Groups::build`), and nothing deletes jobs (so no row
-- relied on a cascade). The checks cost a replay about a tenth of PostgreSQL's CPU
-- (docs/replay.md, "The replay against its ceiling").

ALTER TABLE pages DROP CONSTRAINT pages_job_id_fkey;
ALTER TABLE image_sources DROP CONSTRAINT image_sources_job_id_fkey;
ALTER TABLE rejections DROP CONSTRAINT rejections_job_id_fkey;
