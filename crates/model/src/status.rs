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

    const ALL: [Status; 5] = [Status::Queued, Status::Sent, Status::Delivered, Status::Read, Status::Failed];

    fn any_status() -> impl Strategy<Value = Status> {
        prop::sample::select(ALL.to_vec())
    }

    /// The forward line as a table, written here apart from `Status::rank`; `failed` is not on it.
    fn line_rank(status: Status) -> Option<u8> {
        const LINE: [(Status, u8); 4] =
            [(Status::Queued, 0), (Status::Sent, 1), (Status::Delivered, 2), (Status::Read, 3)];
        LINE.iter().find(|(s, _)| *s == status).map(|(_, rank)| *rank)
    }

    /// What `merge` must give, from the rules alone: the higher rank wins; `failed` replaces
    /// only `queued` (0) or `sent` (1); nothing replaces `failed`.
    fn oracle(current: Status, reported: Status) -> Status {
        match (line_rank(current), line_rank(reported)) {
            (None, _) => current,
            (Some(rank), None) if rank <= 1 => reported,
            (Some(_), None) => current,
            (Some(rank), Some(new)) if new > rank => reported,
            (Some(_), Some(_)) => current,
        }
    }

    #[test]
    fn merge_agrees_with_the_oracle_on_every_pair() {
        for current in ALL {
            for reported in ALL {
                assert_eq!(current.merge(reported), oracle(current, reported), "{current:?} + {reported:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_sequence_of_reports_ends_where_the_oracle_does(
            start in any_status(),
            reports in prop::collection::vec(any_status(), 0..12),
        ) {
            let mut merged = start;
            let mut expected = start;
            for reported in reports {
                let next = merged.merge(reported);
                expected = oracle(expected, reported);
                prop_assert_eq!(next, expected, "{:?} + {:?}", merged, reported);
                // Never backwards: along the line the rank only grows, and `failed` stays.
                match (line_rank(merged), line_rank(next)) {
                    (Some(before), Some(after)) => prop_assert!(after >= before, "{merged:?} -> {next:?}"),
                    (Some(before), None) => prop_assert!(before <= 1, "{merged:?} -> failed"),
                    (None, after) => prop_assert_eq!(after, None, "failed moved to {:?}", next),
                }
                merged = next;
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
            let best = reports.iter().copied().max_by_key(|s| line_rank(*s)).unwrap();
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
        for s in ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Status::parse("seen"), None);
    }
}
