//! Admission to the frontier: claiming URLs in the seen-set and spending job budgets.
//!
//! Every candidate URL is claimed with the owner tag of the message that found it.
//! [`Claim::First`] claims get budget (`pages` up to `max_pages`, `images` up to
//! `max_images`), in document order, as far as it goes. [`Claim::Mine`] claims are
//! this same message redelivered after a crash: they are published again (the stream
//! deduplicates by message id). [`Claim::Other`] URLs belong to another message.
//! [`Claim::Lowered`] pages were claimed by another message at a greater link depth:
//! this message has taken them over at its smaller depth and publishes them again (no
//! budget: the page already has its share), so a page's depth is its shortest path.
//!
//! Known edge: if a message crashes after reserving budget and is redelivered, its
//! `Mine` claims are all re-published, including any that got no budget the first time;
//! a job can overshoot its cap by at most that page's candidates, and only after a crash.

use imgcrawl_bus::seen::{Claim, SeenSet};
use imgcrawl_bus::worker::Delivery;
use imgcrawl_bus::BusError;
use uuid::Uuid;

/// Claims sent to the KV store at once.
const CLAIM_BATCH: usize = 128;

/// What is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pages: seen-set kind `page`, budget `pages`.
    Page,
    /// Image URLs: seen-set kind `image`, budget `images`.
    Image,
}

impl Kind {
    /// The seen-set key kind.
    pub fn key_kind(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::Image => "image",
        }
    }

    /// The budget name.
    pub fn budget(self) -> &'static str {
        match self {
            Kind::Page => "pages",
            Kind::Image => "images",
        }
    }
}

/// The owner tag of a delivery: identifies the message, so its redelivery sees `Mine`.
pub fn owner_tag(d: &Delivery) -> String {
    format!("seq:{}", d.stream_sequence)
}

/// Indices of the candidates to publish, given their claims and the budget granted
/// for the `First` ones: every `Mine` and `Lowered`, and the first `granted` `First`s.
pub fn select(claims: &[Claim], granted: u64) -> Vec<usize> {
    let mut left = granted;
    let mut out = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        match c {
            Claim::Mine | Claim::Lowered => out.push(i),
            Claim::First if left > 0 => {
                left -= 1;
                out.push(i);
            }
            Claim::First | Claim::Other => {}
        }
    }
    out
}

/// Claims every URL of `urls` for `owner` (pages at link depth `depth`), reserves
/// budget for the new ones and returns the indices of the URLs this message must
/// publish.
pub async fn admit(
    seen: &SeenSet,
    job: Uuid,
    kind: Kind,
    limit: u64,
    urls: &[String],
    owner: &str,
    depth: Option<u32>,
) -> Result<Vec<usize>, BusError> {
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let mut claims = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(CLAIM_BATCH) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|u| SeenSet::key(job, kind.key_kind(), u))
            .collect();
        claims.extend(seen.claim_all(&keys, owner, depth).await?);
    }
    let firsts = claims.iter().filter(|c| **c == Claim::First).count() as u64;
    let granted = if firsts > 0 {
        seen.reserve(job, kind.budget(), firsts, limit).await?
    } else {
        0
    };
    Ok(select(&claims, granted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Claim::{First, Lowered, Mine, Other};

    #[test]
    fn select_publishes_mine_and_budgeted_firsts() {
        assert_eq!(
            select(&[First, Other, First, Mine, First], 2),
            vec![0, 2, 3]
        );
        assert_eq!(select(&[First, First], 0), Vec::<usize>::new());
        assert_eq!(select(&[Mine, Mine, Other], 0), vec![0, 1]);
        assert_eq!(select(&[First, First, First], 10), vec![0, 1, 2]);
        assert_eq!(select(&[], 5), Vec::<usize>::new());
        // A page taken over at a smaller depth is published again, without budget.
        assert_eq!(select(&[Lowered, First, Other], 0), vec![0]);
        assert_eq!(select(&[First, Lowered, First], 1), vec![0, 1]);
    }

    #[test]
    fn keys_differ_by_kind() {
        let j = Uuid::from_u128(7);
        assert_ne!(
            SeenSet::key(j, Kind::Page.key_kind(), "http://a/"),
            SeenSet::key(j, Kind::Image.key_kind(), "http://a/")
        );
        assert_eq!(
            (Kind::Page.budget(), Kind::Image.budget()),
            ("pages", "images")
        );
    }
}
