//! Who should be primary: pure decisions over the nodes' states, so they can be
//! tested without a database.
//!
//! * No pointer yet: once every node was checked (or the watcher waited long enough),
//!   the best healthy node is elected.
//! * The primary is down, or lagging while a healthy node is not: the best other
//!   healthy node replaces it. "Best" = not lagging, then lowest priority number,
//!   then highest checkpoint, then name. A lagging node still beats no node: it
//!   catches up from its own checkpoint, nothing is lost.
//! * A node has seen an epoch above the pointer's (a failover interrupted between
//!   fencing the old primary and writing the pointer): the pointer is written again
//!   with a higher epoch, so no writer stays fenced.
//! * No automatic failback: a returning node with a better priority stays standby
//!   until an operator switches over (no flapping).

use imgcrawl_bus::ha::Pointer;

use crate::health::{Health, NodeState};

/// What the watcher should do about the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Keep,
    /// Make `to` the primary with a new epoch.
    Elect {
        /// The node to promote.
        to: String,
        /// Why, for the pointer and the failover event.
        reason: String,
    },
}

/// Healthy nodes other than `exclude`, best first.
pub fn candidates<'a>(nodes: &'a [NodeState], exclude: Option<&str>) -> Vec<&'a NodeState> {
    let mut c: Vec<&NodeState> = nodes
        .iter()
        .filter(|n| n.health == Health::Up && Some(n.name.as_str()) != exclude)
        .collect();
    c.sort_by(|a, b| {
        (
            a.lagging,
            a.priority,
            std::cmp::Reverse(a.checkpoint),
            &a.name,
        )
            .cmp(&(
                b.lagging,
                b.priority,
                std::cmp::Reverse(b.checkpoint),
                &b.name,
            ))
    });
    c
}

/// The epoch of the next pointer: above the pointer's and above any node's.
pub fn next_epoch(pointer: Option<&Pointer>, nodes: &[NodeState]) -> u64 {
    let on_nodes = nodes.iter().filter_map(|n| n.epoch).max().unwrap_or(0);
    pointer.map_or(0, |p| p.epoch).max(on_nodes) + 1
}

/// The automatic decision. `settled`: every node was checked at least once (or long
/// enough was waited); `auto`: automatic failover is on.
pub fn decide(
    pointer: Option<&Pointer>,
    nodes: &[NodeState],
    settled: bool,
    auto: bool,
) -> Decision {
    let elect = |exclude: Option<&str>, reason: String| match candidates(nodes, exclude).first() {
        Some(n) => Decision::Elect {
            to: n.name.clone(),
            reason,
        },
        None => Decision::Keep,
    };
    let Some(p) = pointer else {
        return if settled {
            elect(None, "initial election".into())
        } else {
            Decision::Keep
        };
    };
    let Some(primary) = nodes.iter().find(|n| n.name == p.primary) else {
        return elect(
            None,
            format!("primary {} is not a configured node", p.primary),
        );
    };
    if let Some(n) = nodes.iter().find(|n| n.epoch.is_some_and(|e| e > p.epoch)) {
        if primary.health == Health::Up {
            return Decision::Elect {
                to: primary.name.clone(),
                reason: format!(
                    "re-epoch: node {} has seen epoch {} above the pointer's {}",
                    n.name,
                    n.epoch.unwrap_or(0),
                    p.epoch
                ),
            };
        }
    }
    if !auto {
        return Decision::Keep;
    }
    match primary.health {
        Health::Down => elect(
            Some(&primary.name),
            format!("primary {} down: {}", primary.name, primary.down_reason()),
        ),
        Health::Up if primary.lagging => match candidates(nodes, Some(&primary.name)).first() {
            Some(n) if !n.lagging => Decision::Elect {
                to: n.name.clone(),
                reason: format!(
                    "primary {} lags {:.1}s behind the stream",
                    primary.name,
                    primary.lag_secs.unwrap_or(0.0)
                ),
            },
            _ => Decision::Keep,
        },
        _ => Decision::Keep,
    }
}

/// What a manual failover to `target` should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manual {
    /// Switch to the target.
    Switch,
    /// The target already is the primary.
    AlreadyPrimary,
}

/// Checks a manual failover (or switchover) to `target`; `force` allows a lagging
/// target.
pub fn check_manual(
    target: &str,
    pointer: Option<&Pointer>,
    nodes: &[NodeState],
    force: bool,
) -> Result<Manual, String> {
    let Some(n) = nodes.iter().find(|n| n.name == target) else {
        return Err(format!("unknown node {target:?}"));
    };
    if pointer.is_some_and(|p| p.primary == target) {
        return Ok(Manual::AlreadyPrimary);
    }
    match n.health {
        Health::Up => {}
        Health::Down => return Err(format!("node {target} is down: {}", n.down_reason())),
        Health::Unknown => return Err(format!("node {target} has not been checked yet")),
    }
    if n.lagging && !force {
        return Err(format!(
            "node {target} lags {:.1}s behind the stream; wait, or force",
            n.lag_secs.unwrap_or(0.0)
        ));
    }
    Ok(Manual::Switch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Probe, ProbeError};
    use std::time::Duration;

    fn node(name: &str, prio: u32, up: bool, cp: u64) -> NodeState {
        let mut n = NodeState::new(name, prio);
        let r = if up {
            Ok(Probe {
                projected: true,
                checkpoint: cp,
                epoch: 1,
                applied_at: None,
            })
        } else {
            Err(ProbeError::TimedOut(Duration::from_secs(30)))
        };
        n.record(r, Duration::ZERO, 3);
        n
    }

    fn ptr(primary: &str, epoch: u64) -> Pointer {
        Pointer {
            primary: primary.into(),
            epoch,
            reason: String::new(),
            at: chrono::Utc::now(),
            previous: None,
        }
    }

    fn elected(d: Decision) -> String {
        match d {
            Decision::Elect { to, .. } => to,
            Decision::Keep => "keep".into(),
        }
    }

    #[test]
    fn the_first_election_waits_for_every_node_and_takes_the_best_priority() {
        let nodes = [node("b", 2, true, 9), node("a", 1, true, 5)];
        assert_eq!(decide(None, &nodes, false, true), Decision::Keep);
        assert_eq!(elected(decide(None, &nodes, true, true)), "a");
    }

    #[test]
    fn a_down_primary_is_replaced_by_the_best_healthy_node_and_never_failed_back() {
        let nodes = [
            node("a", 1, false, 5),
            node("b", 2, true, 5),
            node("c", 3, true, 7),
        ];
        let d = decide(Some(&ptr("a", 1)), &nodes, true, true);
        assert!(matches!(&d, Decision::Elect { reason, .. } if reason.contains("primary a down")));
        assert_eq!(elected(d), "b");
        assert_eq!(
            decide(Some(&ptr("a", 1)), &nodes, true, false),
            Decision::Keep
        );
        let back = [node("a", 1, true, 5), node("b", 2, true, 5)];
        assert_eq!(
            decide(Some(&ptr("b", 2)), &back, true, true),
            Decision::Keep
        );
        let none = [node("a", 1, false, 5), node("b", 2, false, 5)];
        assert_eq!(
            decide(Some(&ptr("a", 1)), &none, true, true),
            Decision::Keep
        );
    }

    #[test]
    fn a_lagging_primary_is_replaced_only_by_a_node_that_is_not() {
        let mut nodes = [node("a", 1, true, 5), node("b", 2, true, 9)];
        nodes[0].lagging = true;
        assert_eq!(elected(decide(Some(&ptr("a", 1)), &nodes, true, true)), "b");
        nodes[1].lagging = true;
        assert_eq!(
            decide(Some(&ptr("a", 1)), &nodes, true, true),
            Decision::Keep
        );
    }

    #[test]
    fn epochs_only_grow_and_an_epoch_above_the_pointer_is_repaired() {
        let mut nodes = [node("a", 1, true, 5), node("b", 2, true, 5)];
        nodes[1].epoch = Some(4);
        assert_eq!(next_epoch(Some(&ptr("a", 2)), &nodes), 5);
        assert_eq!(next_epoch(None, &[]), 1);
        let d = decide(Some(&ptr("a", 2)), &nodes, true, true);
        assert!(
            matches!(&d, Decision::Elect { to, reason } if to == "a" && reason.starts_with("re-epoch"))
        );
    }

    #[test]
    fn manual_failovers_need_a_healthy_target() {
        let mut nodes = [
            node("a", 1, true, 5),
            node("b", 2, true, 5),
            node("c", 3, false, 5),
        ];
        let p = ptr("a", 1);
        assert_eq!(
            check_manual("b", Some(&p), &nodes, false),
            Ok(Manual::Switch)
        );
        assert_eq!(
            check_manual("a", Some(&p), &nodes, false),
            Ok(Manual::AlreadyPrimary)
        );
        assert!(check_manual("c", Some(&p), &nodes, false)
            .unwrap_err()
            .contains("down"));
        assert!(check_manual("x", Some(&p), &nodes, false)
            .unwrap_err()
            .contains("unknown"));
        nodes[1].lagging = true;
        assert!(check_manual("b", Some(&p), &nodes, false).is_err());
        assert_eq!(
            check_manual("b", Some(&p), &nodes, true),
            Ok(Manual::Switch)
        );
    }
}
