-- The failover history: one row per `imgcrawl.ha.failover` event, i.e. per new primary
-- of a projection target (`postgres`, `objects`) at a fencing epoch.
--
-- Like every projected table, the values come from the event and its stream sequence
-- (never now()), so every node holds the same rows. The first event per (target,
-- epoch) wins: a watcher that re-publishes the current pointer's event after taking
-- the lease (it may have died between writing the pointer and publishing) adds nothing.

CREATE TABLE failovers (
    target      text NOT NULL,
    epoch       bigint NOT NULL,
    seq         bigint NOT NULL,
    from_node   text,
    to_node     text NOT NULL,
    reason      text NOT NULL,
    manual      boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (target, epoch)
);
CREATE INDEX failovers_occurred_at ON failovers (occurred_at DESC);
