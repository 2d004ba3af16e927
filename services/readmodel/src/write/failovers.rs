//! The `failovers` table: the HA watcher's history of primaries, one row per
//! `ha.failover` event (the first per target and epoch wins).

use chrono::{DateTime, Utc};
use imgcrawl_events::Event;
use sqlx::PgConnection;

use super::clean::{big, opt_text, text, ts};
use super::sourced::Sourced;
use crate::error::{db, ReadModelError};

/// Inserts the failovers among `fresh` (sequence order, above the checkpoint).
pub(crate) async fn insert(c: &mut PgConnection, fresh: &[&Sourced]) -> Result<(), ReadModelError> {
    let mut targets = Vec::new();
    let mut epochs = Vec::new();
    let mut seqs = Vec::new();
    let mut froms: Vec<Option<String>> = Vec::new();
    let mut tos = Vec::new();
    let mut reasons = Vec::new();
    let mut manuals = Vec::new();
    let mut ats: Vec<DateTime<Utc>> = Vec::new();
    for s in fresh {
        let Event::HaFailover(f) = &s.event else {
            continue;
        };
        targets.push(text(&f.target));
        epochs.push(big(f.epoch));
        seqs.push(big(s.seq));
        froms.push(opt_text(f.from.as_deref()));
        tos.push(text(&f.to));
        reasons.push(text(&f.reason));
        manuals.push(f.manual);
        ats.push(ts(f.occurred_at));
    }
    if targets.is_empty() {
        return Ok(());
    }
    // DISTINCT ON keeps the lowest sequence per key: one statement cannot touch a row
    // twice, and "first wins" is what applying one event at a time does.
    sqlx::query(
        "INSERT INTO failovers (target, epoch, seq, from_node, to_node, reason, manual, occurred_at)
         SELECT DISTINCT ON (u.target, u.epoch) u.target, u.epoch, u.seq, u.from_node, u.to_node, u.reason, u.manual, u.at
         FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[])
              AS u(target, epoch, seq, from_node, to_node, reason, manual, at)
         ORDER BY u.target, u.epoch, u.seq
         ON CONFLICT (target, epoch) DO NOTHING",
    )
    .bind(&targets)
    .bind(&epochs)
    .bind(&seqs)
    .bind(&froms)
    .bind(&tos)
    .bind(&reasons)
    .bind(&manuals)
    .bind(&ats)
    .execute(c)
    .await
    .map_err(db("insert failovers"))?;
    Ok(())
}
