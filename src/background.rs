//! The server's background tasks as one set: each named, each told when
//! shutdown begins, and drained with a bounded grace. A task that has not
//! ended when the grace runs out is aborted, and the log names it.
//!
//! Every task here ends at its next await once told to stop: none of them
//! holds work a caller waits on (a request's statement is signed on the
//! request's own task), so ending between two steps loses nothing.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The set of background tasks of one server.
pub(crate) struct Background {
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
    stop: watch::Sender<bool>,
}

impl Background {
    pub(crate) fn new() -> Background {
        Background { tasks: JoinSet::new(), names: HashMap::new(), stop: watch::Sender::new(false) }
    }

    /// Runs `task` until it ends or shutdown begins, whichever is first.
    /// `name` is what the log calls it if it must be forced.
    pub(crate) fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.subscribe();
        let handle = self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Tells every task to stop and waits at most `grace` for them all;
    /// aborts the ones still running then, and logs each by name.
    /// Returns the names of the tasks that had to be forced.
    pub(crate) async fn drain(mut self, grace: Duration) -> Vec<&'static str> {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(done)) => {
                    let id = done.as_ref().map_or_else(tokio::task::JoinError::id, |(id, ())| *id);
                    let name = self.names.remove(&id).unwrap_or("?");
                    match done {
                        Err(e) if e.is_panic() => tracing::error!(task = name, error = %e, "a background task panicked"),
                        _ => tracing::debug!(task = name, "background task ended"),
                    }
                }
                Ok(None) => return Vec::new(),
                Err(_) => break,
            }
        }
        self.tasks.abort_all();
        let mut forced: Vec<&'static str> = self.names.into_values().collect();
        forced.sort_unstable();
        tracing::warn!(tasks = ?forced, ?grace, "background tasks still running after the grace: aborted");
        forced
    }

    #[cfg(test)]
    fn spawn_deaf(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_end_when_told_and_the_stubborn_are_aborted() {
        let mut set = Background::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        set.spawn("waits forever", std::future::pending());
        set.spawn("ends itself", async move {
            let _ = rx.await;
        });
        tx.send(()).unwrap();
        assert!(set.drain(Duration::from_secs(1)).await.is_empty());

        // A task that does not listen (one stuck in a long step stands for
        // it) is not awaited past the grace, and is named.
        let mut set = Background::new();
        set.spawn("listens", std::future::pending());
        set.spawn_deaf("deaf", std::future::pending());
        let before = tokio::time::Instant::now();
        let forced = set.drain(Duration::from_secs(2)).await;
        assert_eq!(tokio::time::Instant::now() - before, Duration::from_secs(2), "waited the grace, no more");
        assert_eq!(forced, vec!["deaf"]);
    }
}
