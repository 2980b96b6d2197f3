//! The delivery status line of one outbound message and its monotonic merge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an outbound message stands: `queued → sent → delivered → read`, or `failed`.
///
/// Operators see: queued = watch, delivered = one tick, read = two ticks, failed = red cross.
/// A status never moves backwards; see [`Status::merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Status {
    /// Position on the forward line; `failed` is handled apart in [`Status::merge`].
    const fn rank(self) -> u8 {
        match self {
            Status::Queued => 0,
            Status::Sent => 1,
            Status::Delivered => 2,
            Status::Read => 3,
            Status::Failed => 4,
        }
    }

    /// The string form stored and sent in the envelope.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
        }
    }

    /// Parses the string form.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Queued, Status::Sent, Status::Delivered, Status::Read, Status::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    /// Whether no later report can change this status.
    pub const fn is_final(self) -> bool {
        matches!(self, Status::Read | Status::Failed)
    }

    /// Merges a newly reported status into the current one; the result never moves backwards.
    ///
    /// - Along `queued → sent → delivered → read` the later step wins, whatever the
    ///   order of arrival: a late `delivered` after `read` changes nothing.
    /// - `failed` can replace `queued` or `sent` only: a message the customer's device
    ///   already received cannot un-deliver.
    /// - `failed` is final: nothing replaces it.
    pub fn merge(self, reported: Status) -> Status {
        match (self, reported) {
            (Status::Failed, _) => Status::Failed,
            (current, Status::Failed) => {
                if current.rank() < Status::Delivered.rank() {
                    Status::Failed
                } else {
                    current
                }
            }
            (current, reported) => {
                if reported.rank() > current.rank() {
                    reported
                } else {
                    current
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Queued),
            Just(Status::Sent),
            Just(Status::Delivered),
            Just(Status::Read),
            Just(Status::Failed),
        ]
    }

    /// `a` may be followed by `b` on the status line (equal counts as reachable).
    fn reachable(a: Status, b: Status) -> bool {
        a == b || Status::merge(a, b) == b && a != Status::Failed
    }

    proptest! {
        #[test]
        fn merge_never_moves_backwards(start in any_status(), reports in prop::collection::vec(any_status(), 0..12)) {
            let mut current = start;
            for reported in reports {
                let next = current.merge(reported);
                prop_assert!(reachable(current, next), "{current:?} + {reported:?} moved back to {next:?}");
                if current == Status::Failed {
                    prop_assert_eq!(next, Status::Failed);
                }
                current = next;
            }
        }

        #[test]
        fn merge_is_idempotent(a in any_status(), b in any_status()) {
            let once = a.merge(b);
            prop_assert_eq!(once.merge(b), once);
        }

        #[test]
        fn order_of_forward_reports_does_not_matter(reports in prop::collection::vec(
            prop_oneof![Just(Status::Sent), Just(Status::Delivered), Just(Status::Read)], 1..8)) {
            let forward = reports.iter().fold(Status::Queued, |s, r| s.merge(*r));
            let backward = reports.iter().rev().fold(Status::Queued, |s, r| s.merge(*r));
            prop_assert_eq!(forward, backward);
            let best = reports.iter().copied().max_by_key(|s| s.rank()).unwrap();
            prop_assert_eq!(forward, best);
        }
    }

    #[test]
    fn late_delivered_after_read_changes_nothing() {
        assert_eq!(Status::Read.merge(Status::Delivered), Status::Read);
        assert_eq!(Status::Read.merge(Status::Sent), Status::Read);
    }

    #[test]
    fn failed_only_before_delivery() {
        assert_eq!(Status::Sent.merge(Status::Failed), Status::Failed);
        assert_eq!(Status::Queued.merge(Status::Failed), Status::Failed);
        assert_eq!(Status::Delivered.merge(Status::Failed), Status::Delivered);
        assert_eq!(Status::Failed.merge(Status::Read), Status::Failed);
    }

    #[test]
    fn string_form_round_trips() {
        for s in [Status::Queued, Status::Sent, Status::Delivered, Status::Read, Status::Failed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Status::parse("seen"), None);
    }
}
