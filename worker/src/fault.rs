//! Fault injection for the checker (`worker/tests/checker.rs`): a worker built with the
//! `fault-injection` feature SIGKILLs itself the `n`th time it reaches a given step of a send,
//! so each step is hit deliberately rather than by a lucky timer. Armed by
//! `MAILAPI_FAULT_KILL_AT=<step>:<n>` (e.g. `after_250:40`). Without the feature (every build
//! but the test command's) [`reached`] is an empty inline function and the variable is ignored.

/// The points of a send at which a crash means something different (docs/DELIVERY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Entries read from the stream, nothing claimed yet.
    AfterRead,
    /// Claimed in Postgres, the SMTP transaction not begun.
    BeforeSmtp,
    /// DATA under way: half the message written to the MTA, no final dot.
    DuringData,
    /// The MTA answered 250 (it has the message); our record of it not committed.
    After250,
    /// The record committed; the stream entry not acknowledged.
    AfterCommit,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::AfterRead,
        Step::BeforeSmtp,
        Step::DuringData,
        Step::After250,
        Step::AfterCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::AfterRead => "after_read",
            Step::BeforeSmtp => "before_smtp",
            Step::DuringData => "during_data",
            Step::After250 => "after_250",
            Step::AfterCommit => "after_commit",
        }
    }
}

#[cfg(feature = "fault-injection")]
mod armed {
    use super::Step;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn plan() -> Option<(Step, u64)> {
        static PLAN: OnceLock<Option<(Step, u64)>> = OnceLock::new();
        *PLAN.get_or_init(|| {
            let raw = std::env::var("MAILAPI_FAULT_KILL_AT").ok()?;
            let (name, n) = raw.split_once(':').unwrap_or((&raw, "1"));
            let step = Step::ALL.into_iter().find(|s| s.name() == name)?;
            Some((step, n.parse().ok()?))
        })
    }

    pub fn is_armed(step: Step) -> bool {
        plan().is_some_and(|(s, _)| s == step)
    }

    pub fn reached(step: Step) {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let Some((armed, n)) = plan() else { return };
        if armed != step || COUNT.fetch_add(1, Ordering::SeqCst) + 1 != n {
            return;
        }
        eprintln!("fault injection: SIGKILL at {} (time {n})", step.name());
        // kill(1) rather than an unsafe libc call: this thread blocks in it until the signal
        // lands, so the task that reached the step goes no further.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

/// Called at each [`Step`]; kills the process when armed for it.
#[cfg(feature = "fault-injection")]
pub use armed::reached;

/// Whether the process is armed to die at `step`.
#[cfg(feature = "fault-injection")]
pub use armed::is_armed;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn reached(_step: Step) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn is_armed(_step: Step) -> bool {
    false
}
