//! Which parts of a connection's task woke it.
//!
//! One task drives three things for a client connection: its watchdog, the client side (hyper's
//! server connection, which runs the request) and the upstream connection. Given the task's
//! own waker, any of them waking would make the task poll all three, and they wake each other
//! several times per request (the request handed to the upstream side, the response handed
//! back, its body, the body's demand signal): five polls of everything per proxied request.
//!
//! Instead each part gets a waker of its own that notes the part as woken and wakes the task
//! only if it is not being polled already; a poll then polls just the parts noted, and polls
//! again at once the parts woken meanwhile, within the same turn of the task.

use futures_util::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::task::{Context, Wake, Waker};

/// A part of the task, as a bit of the woken set.
#[derive(Clone, Copy)]
pub(super) struct Part(u8);

pub(super) const WATCHDOG: Part = Part(1);
pub(super) const CLIENT: Part = Part(2);
pub(super) const UPSTREAM: Part = Part(4);
const ALL: u8 = 1 | 2 | 4;

/// The set of parts woken and not yet polled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Woken(u8);

impl Woken {
    pub fn has(self, part: Part) -> bool {
        self.0 & part.0 != 0
    }

    pub fn add(&mut self, part: Part) {
        self.0 |= part.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

struct Shared {
    woken: AtomicU8,
    /// While set, wakers only note their part: the task is polling and will look.
    polling: AtomicBool,
    task: AtomicWaker,
}

struct PartWaker {
    shared: Arc<Shared>,
    part: Part,
}

impl Wake for PartWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let before = self.shared.woken.fetch_or(self.part.0, SeqCst);
        // Already noted: the task has been woken for it, or is polling and will see it.
        // (Sequentially consistent, with `end`: either this sees the poll going on, or the
        // poll, ending, sees this part noted.)
        if before & self.part.0 == 0 && !self.shared.polling.load(SeqCst) {
            self.shared.task.wake();
        }
    }
}

/// The wakers of one connection's task.
pub(super) struct Wakeups {
    shared: Arc<Shared>,
    wakers: [Waker; 3],
}

impl Wakeups {
    /// Every part starts woken: each must be polled once to register its interests.
    pub fn new() -> Wakeups {
        let shared = Arc::new(Shared {
            woken: AtomicU8::new(ALL),
            polling: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        let waker = |part| {
            Waker::from(Arc::new(PartWaker {
                shared: shared.clone(),
                part,
            }))
        };
        let wakers = [waker(WATCHDOG), waker(CLIENT), waker(UPSTREAM)];
        Wakeups { shared, wakers }
    }

    /// The context to poll `part` with.
    pub fn context(&self, part: Part) -> Context<'_> {
        Context::from_waker(&self.wakers[part.0.trailing_zeros() as usize])
    }

    /// Starts a poll of the task: takes the parts woken so far.
    pub fn begin(&self, cx: &Context<'_>) -> Woken {
        self.shared.task.register(cx.waker());
        self.shared.polling.store(true, SeqCst);
        self.take()
    }

    /// Takes the parts woken since the last look, during the poll.
    pub fn take(&self) -> Woken {
        Woken(self.shared.woken.swap(0, SeqCst))
    }

    /// Ends the poll, unless a part woke at the last moment: then that part, and the poll
    /// goes on.
    pub fn end(&self) -> Woken {
        self.shared.polling.store(false, SeqCst);
        let woken = self.take();
        if !woken.is_empty() {
            self.shared.polling.store(true, SeqCst);
        }
        woken
    }

    /// Ends the poll with `woken` still to be polled: the task polls again on its next turn
    /// (after the others on its thread have had theirs).
    pub fn yield_with(&self, woken: Woken, cx: &Context<'_>) {
        self.shared.woken.fetch_or(woken.0, SeqCst);
        self.shared.polling.store(false, SeqCst);
        cx.waker().wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_part_woken_while_polling_is_noted_without_waking_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let cx = Context::from_waker(&task);
        let w = Wakeups::new();

        let first = w.begin(&cx);
        assert!(first.has(WATCHDOG) && first.has(CLIENT) && first.has(UPSTREAM));
        w.context(UPSTREAM).waker().wake_by_ref();
        assert_eq!(count.0.load(SeqCst), 0, "the task was woken while polling");
        let next = w.take();
        assert!(next.has(UPSTREAM) && !next.has(CLIENT) && !next.has(WATCHDOG));
        assert!(w.end().is_empty());

        // Not polling: a wake wakes the task once, however many times the part wakes.
        w.context(CLIENT).waker().wake_by_ref();
        w.context(CLIENT).waker().wake_by_ref();
        assert_eq!(count.0.load(SeqCst), 1);
        assert!(w.begin(&cx).has(CLIENT));
        assert!(w.end().is_empty());
    }

    #[test]
    fn yielding_keeps_the_parts_for_the_next_poll_and_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let cx = Context::from_waker(&task);
        let w = Wakeups::new();
        let woken = w.begin(&cx);
        w.yield_with(woken, &cx);
        assert_eq!(count.0.load(SeqCst), 1);
        let again = w.begin(&cx);
        assert_eq!(again, woken);
    }
}
