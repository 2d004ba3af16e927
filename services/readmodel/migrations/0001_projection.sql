-- The PostgreSQL projection of the imgcrawl event stream.
--
-- Every value comes from an event: timestamps are the events' occurred_at (or the
-- stream's publish time for a hand-published request), ids are stream sequences.
-- No column defaults to now() and no id comes from a sequence, so two replays of one
-- stream hold identical rows. Constant defaults (0, false) are fine.

CREATE TABLE jobs (
    job_id            uuid PRIMARY KEY,
    request_seq       bigint NOT NULL,
    seeds             text[] NOT NULL,
    spec              jsonb NOT NULL,
    label             text,
    status            text NOT NULL CHECK (status IN ('running', 'stopping', 'completed', 'stopped')),
    requested_at      timestamptz NOT NULL,
    stopped_at        timestamptz,
    completed_at      timestamptz,
    pages_discovered  bigint NOT NULL DEFAULT 0,
    pages_fetched     bigint NOT NULL DEFAULT 0,
    pages_failed      bigint NOT NULL DEFAULT 0,
    images_discovered bigint NOT NULL DEFAULT 0,
    images_downloaded bigint NOT NULL DEFAULT 0,
    images_rejected   bigint NOT NULL DEFAULT 0,
    images_stored     bigint NOT NULL DEFAULT 0,
    bytes_downloaded  bigint NOT NULL DEFAULT 0,
    last_event_at     timestamptz NOT NULL,
    last_seq          bigint NOT NULL
);
CREATE INDEX jobs_requested_at ON jobs (requested_at DESC, job_id);
CREATE INDEX jobs_status ON jobs (status, completed_at);

-- The first crawl.stopped per job, recorded even when the job is not (yet) known,
-- because a stop may be published before the request is applied.
CREATE TABLE job_stops (
    job_id      uuid PRIMARY KEY,
    seq         bigint NOT NULL,
    reason      text,
    occurred_at timestamptz NOT NULL
);

CREATE TABLE pages (
    job_id            uuid NOT NULL REFERENCES jobs (job_id),
    url               text NOT NULL,
    seq               bigint NOT NULL,
    depth             integer NOT NULL,
    referrer          text,
    status            text NOT NULL CHECK (status IN ('discovered', 'fetched', 'failed')),
    http_status       integer,
    final_url         text,
    title             text,
    failure           text,
    detail            text,
    bytes             bigint,
    links_found       integer,
    pages_discovered  integer,
    images_found      integer,
    images_discovered integer,
    discovered_at     timestamptz NOT NULL,
    fetched_at        timestamptz,
    PRIMARY KEY (job_id, url)
);
CREATE INDEX pages_job_seq ON pages (job_id, seq);

-- One row per distinct image (SHA-256). id is the stream sequence of the first
-- image.downloaded of these bytes; url and filename are that download's.
CREATE TABLE images (
    sha256        text PRIMARY KEY,
    id            bigint NOT NULL UNIQUE,
    url           text NOT NULL,
    filename      text,
    object_key    text,
    bytes         bigint NOT NULL,
    width         integer NOT NULL,
    height        integer NOT NULL,
    format        text NOT NULL,
    content_type  text NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    deleted       boolean NOT NULL DEFAULT false,
    deleted_at    timestamptz
);
CREATE INDEX images_format ON images (format, id);
CREATE INDEX images_first_seen ON images (first_seen_at, id);

-- Tombstones by SHA-256 (the first deletion wins), kept even for bytes never indexed,
-- so a deletion applied before a download still hides the image.
CREATE TABLE image_tombstones (
    sha256     text PRIMARY KEY,
    seq        bigint NOT NULL,
    reason     text,
    deleted_at timestamptz NOT NULL
);

-- Image URLs per job: many sources, one image.
CREATE TABLE image_sources (
    job_id        uuid NOT NULL REFERENCES jobs (job_id),
    url           text NOT NULL,
    sha256        text,
    page_url      text NOT NULL,
    alt           text,
    found_by      text,
    final_url     text,
    status        text NOT NULL CHECK (status IN ('discovered', 'downloaded', 'rejected', 'stored')),
    seq           bigint NOT NULL,
    discovered_at timestamptz NOT NULL,
    downloaded_at timestamptz,
    stored_at     timestamptz,
    PRIMARY KEY (job_id, url)
);
CREATE INDEX image_sources_sha256 ON image_sources (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX image_sources_job_seq ON image_sources (job_id, seq);

CREATE TABLE rejections (
    job_id      uuid NOT NULL REFERENCES jobs (job_id),
    url         text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    http_status integer,
    page_url    text NOT NULL,
    seq         bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, url)
);
CREATE INDEX rejections_job_reason ON rejections (job_id, reason);

-- Where each projection writer is in the stream; written in the same transaction as
-- the rows. epoch is the HA fencing token of the writer that wrote it.
CREATE TABLE projection_checkpoint (
    name       text PRIMARY KEY,
    last_seq   bigint NOT NULL,
    epoch      bigint NOT NULL DEFAULT 0,
    updated_at timestamptz
);
