//! Keeps this replica's program snapshot current: a change to the program notifies a
//! channel of its own (`program_snapshot::CHANNEL`, from the revision's trigger), and the
//! follower then reads the program's revision, so that requests here stop reading a
//! snapshot from before a change another replica made. It also reads at every poll (the
//! only way on SQLite, where the CLI is the other process that can change the program)
//! and after a lost connection. This process's own changes move its snapshot themselves
//! (`service::program`).

use std::time::Duration;

use crate::outbox::wakeups::{POLLS, Wakeups};
use crate::store::{Db, program_snapshot};

/// Runs until the supervisor stops it.
pub async fn follow_program(db: Db) {
    let reader = loop {
        match db.background().await {
            Ok(reader) => break reader,
            Err(error) => {
                tracing::warn!(%error, "program follower cannot connect yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // No commit of this process matters here: its own program changes move its
    // snapshot themselves.
    let mut wakeups = Wakeups::new(&reader, program_snapshot::CHANNEL, POLLS, None).await;
    loop {
        // A change that committed while the listener was being set up is read here.
        match program_snapshot::revision(&reader).await {
            Ok(revision) => db.programs().saw(revision),
            Err(error) => tracing::warn!(%error, "could not read the program's revision"),
        }
        wakeups.next().await;
    }
}
