//! The owner of a server's background tasks (the live relay, the evaluation schedule,
//! and whatever later work runs beside the requests): each is started by name, runs until
//! the server stops, and every exit is reported. A task that ends or panics while the
//! server runs is logged as an error and counted
//! (`tierwise_background_task_exits_total{task, how}`), not lost with a dropped handle;
//! at shutdown each is stopped and awaited.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::{AbortHandle, JoinHandle};

/// How a background task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A long-running task returned while the server was running: it should run until
    /// stopped.
    Ended,
    /// A one-shot task (`spawn_once`) did its work.
    Finished,
    Panicked,
    /// The supervisor stopped it at shutdown.
    Stopped,
}

impl Exit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ended => "ended",
            Self::Finished => "finished",
            Self::Panicked => "panicked",
            Self::Stopped => "stopped",
        }
    }
}

struct Task {
    name: &'static str,
    work: AbortHandle,
    watcher: JoinHandle<()>,
}

/// Shared (`Arc`) by the application and whatever starts one-shot work while serving (an
/// evaluation run started with `wait: false`).
#[derive(Default)]
pub struct Supervisor {
    tasks: Mutex<Vec<Task>>,
    stopping: Arc<AtomicBool>,
    exits: Arc<Mutex<Vec<(&'static str, Exit)>>>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `work` as the background task `name`, which runs until the server stops.
    /// Must be called inside the Tokio runtime.
    pub fn spawn(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.start(name, work, false);
    }

    /// Starts `work` as a task that ends when its work is done; stopped, like the others,
    /// if the server stops first.
    pub fn spawn_once(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.start(name, work, true);
    }

    fn start(
        &self,
        name: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
        once: bool,
    ) {
        let work = tokio::spawn(work);
        let abort = work.abort_handle();
        let stopping = self.stopping.clone();
        let exits = self.exits.clone();
        let watcher = tokio::spawn(async move {
            let exit = match work.await {
                Ok(()) if stopping.load(Ordering::Acquire) => Exit::Stopped,
                Ok(()) if once => Exit::Finished,
                Ok(()) => Exit::Ended,
                Err(error) if error.is_panic() => Exit::Panicked,
                Err(_) => Exit::Stopped,
            };
            match exit {
                Exit::Stopped => tracing::info!(task = name, "background task stopped"),
                Exit::Finished => tracing::debug!(task = name, "background task finished"),
                _ => tracing::error!(
                    task = name,
                    how = exit.as_str(),
                    "background task ended while the server runs"
                ),
            }
            metrics::counter!(
                "tierwise_background_task_exits_total",
                "task" => name,
                "how" => exit.as_str()
            )
            .increment(1);
            lock(&exits).push((name, exit));
        });
        let mut tasks = lock(&self.tasks);
        // One-shot tasks that are done need no place in the list.
        tasks.retain(|task| !task.watcher.is_finished());
        tasks.push(Task {
            name,
            work: abort,
            watcher,
        });
    }

    /// The names of the tasks running (or not yet reported), in the order they started.
    pub fn names(&self) -> Vec<&'static str> {
        lock(&self.tasks).iter().map(|task| task.name).collect()
    }

    /// The tasks that have ended so far, and how, in the order they ended.
    pub fn exits(&self) -> Vec<(&'static str, Exit)> {
        lock(&self.exits).clone()
    }

    /// Stops every task and waits until each has been reported.
    pub async fn shutdown(&self) -> Vec<(&'static str, Exit)> {
        self.stopping.store(true, Ordering::Release);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in &tasks {
            task.work.abort();
        }
        for task in tasks {
            let _ = task.watcher.await;
        }
        self.exits()
    }
}

/// A server dropped without `shutdown` (never run, or a test's) does not leave its tasks
/// running.
impl Drop for Supervisor {
    fn drop(&mut self) {
        for task in lock(&self.tasks).iter() {
            task.work.abort();
        }
    }
}

/// The lock, whether or not a panicking holder poisoned it: the lists stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_task_that_ends_or_panics_while_running_is_reported() {
        let supervisor = Supervisor::new();
        supervisor.spawn("returns", async {});
        supervisor.spawn("panics", async { panic!("a bug in a background task") });
        supervisor.spawn("runs", std::future::pending());
        settle().await;
        let mut exits = supervisor.exits();
        exits.sort_by_key(|(name, _)| *name);
        assert_eq!(
            exits,
            [("panics", Exit::Panicked), ("returns", Exit::Ended)]
        );
        assert_eq!(supervisor.names(), ["returns", "panics", "runs"]);
        let exits = supervisor.shutdown().await;
        assert_eq!(exits.last(), Some(&("runs", Exit::Stopped)));
        assert_eq!(exits.len(), 3);
    }

    #[tokio::test]
    async fn a_one_shot_task_finishes_and_leaves_the_list() {
        let supervisor = Supervisor::new();
        supervisor.spawn("runs", std::future::pending());
        supervisor.spawn_once("evaluation run", async {});
        settle().await;
        assert_eq!(supervisor.exits(), [("evaluation run", Exit::Finished)]);
        supervisor.spawn_once("another run", std::future::pending());
        assert_eq!(supervisor.names(), ["runs", "another run"]);
        let mut exits = supervisor.shutdown().await;
        exits.sort_by_key(|(name, _)| *name);
        assert_eq!(
            exits,
            [
                ("another run", Exit::Stopped),
                ("evaluation run", Exit::Finished),
                ("runs", Exit::Stopped)
            ]
        );
    }

    #[tokio::test]
    async fn a_dropped_supervisor_stops_its_tasks() {
        let running = Arc::new(AtomicBool::new(true));
        struct ClearOnDrop(Arc<AtomicBool>);
        impl Drop for ClearOnDrop {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let guard = ClearOnDrop(running.clone());
        let supervisor = Supervisor::new();
        supervisor.spawn("forever", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        settle().await;
        drop(supervisor);
        settle().await;
        assert!(!running.load(Ordering::Acquire), "the task was aborted");
    }

    #[tokio::test]
    async fn shutdown_stops_every_task_and_waits_for_it() {
        let supervisor = Supervisor::new();
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let guard = SetOnDrop(dropped.clone());
        supervisor.spawn("forever", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        supervisor.spawn("ticks", async {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        settle().await;
        assert!(supervisor.exits().is_empty(), "nothing ended on its own");
        let mut exits = supervisor.shutdown().await;
        exits.sort_by_key(|(name, _)| *name);
        assert_eq!(
            exits,
            [("forever", Exit::Stopped), ("ticks", Exit::Stopped)]
        );
        assert!(
            dropped.load(Ordering::Acquire),
            "the task's state was dropped"
        );
    }
}
