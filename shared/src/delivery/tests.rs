//! The transition rule and the suppression rule, case by case.

use super::*;

#[test]
fn deferred_never_overwrites_a_final_status() {
    use RecipientStatus::{Bounced, Failed, Sent, Suppressed};
    for done in [Sent, Bounced, Failed, Suppressed] {
        assert!(
            !transition_allowed(done, RecipientStatus::Deferred),
            "{done:?}"
        );
    }
    assert!(!transition_allowed(
        RecipientStatus::Deferred,
        RecipientStatus::Pending
    ));
    assert!(transition_allowed(
        RecipientStatus::Pending,
        RecipientStatus::Deferred
    ));
    assert!(transition_allowed(
        RecipientStatus::Deferred,
        RecipientStatus::Deferred
    ));
}

#[test]
fn a_final_status_is_taken_once() {
    assert!(transition_allowed(
        RecipientStatus::Deferred,
        RecipientStatus::Sent
    ));
    assert!(!transition_allowed(
        RecipientStatus::Sent,
        RecipientStatus::Sent
    ));
    assert!(!transition_allowed(
        RecipientStatus::Bounced,
        RecipientStatus::Bounced
    ));
    assert!(!transition_allowed(
        RecipientStatus::Failed,
        RecipientStatus::Bounced
    ));
    assert!(!transition_allowed(
        RecipientStatus::Bounced,
        RecipientStatus::Sent
    ));
    // A remote MTA may accept and bounce later.
    assert!(transition_allowed(
        RecipientStatus::Sent,
        RecipientStatus::Bounced
    ));
}

#[test]
fn only_permanent_failures_suppress() {
    assert!(is_hard_bounce(RecipientStatus::Bounced, Some("5.1.1")));
    assert!(!is_hard_bounce(RecipientStatus::Failed, Some("4.2.0")));
    assert!(!is_hard_bounce(RecipientStatus::Sent, Some("5.1.1")));
    assert!(!is_hard_bounce(RecipientStatus::Bounced, None));
}
