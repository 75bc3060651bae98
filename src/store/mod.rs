//! The credit store: records, their versions and the change feed; tenders,
//! bids, policy versions, committee grants and the transparency log's tables.
//!
//! [`CreditStore`] is what the rest of the service sees: the sum of one
//! narrow trait per table family ([`RecordStore`], [`TenderStore`],
//! [`PolicyStore`], [`GrantStore`], [`LogStore`], [`StoreUpkeep`]).
//! [`Store`] is a cheap, cloneable handle to one. Both backends (SQLite,
//! embedded, one file: the default; PostgreSQL, shared by replicas) are one
//! generic implementation, [`SqlStore`], whose SQL is written once, a file
//! per table family; each backend module holds only what really differs: how
//! a write transaction is opened, how a commit is announced, the profile
//! query's plan, and (PostgreSQL) the LISTEN loop.
//!
//! Rows are only inserted, never updated or deleted (committee grants aside:
//! their use and revocation), so every past data version can be read again.
//!
//! The files, each importing only those below it (`cargo test --test api
//! layers` checks that no two files import each other, directly or round
//! about):
//! - `error`, `types`, `options`: what goes in and out, how a store is opened.
//! - `traits`: the table families' traits and their sum, [`CreditStore`].
//! - `dialect`: what differs between SQLite and PostgreSQL (`Backend`),
//!   the helpers to write a statement for either, and `sql_impl!`, the one
//!   statement of what sqlx must do with a backend's types.
//! - `schema`: the migrations a store must have.
//! - `sqlite_file`: the SQLite file watched for loss and replacement.
//! - `sql`: [`SqlStore`] and a write's turn (queue, lock, wait).
//! - `staging`: what a write works out without the store: records'
//!   canonical JSON and digests off the writer's task, and a first load's
//!   fingerprints.
//! - `records` and `record_write`, `tenders`, `policies`, `grants`,
//!   `log_tables`, `upkeep`: one table family each, its trait for [`SqlStore`].
//! - `reach`: reachability, and the guard that fails fast while the store
//!   cannot be reached.
//! - `sqlite`, `postgres`: the two backends and how each is opened.
//! - this file: the [`Store`] handle.

mod dialect;
mod error;
mod grants;
mod log_tables;
mod options;
mod policies;
mod postgres;
mod reach;
mod record_write;
mod records;
mod schema;
mod sql;
mod sqlite;
mod sqlite_file;
mod staging;
mod tenders;
mod traits;
mod types;
mod upkeep;

pub use error::StoreError;
pub use options::{
    DEFAULT_CONNECTIONS, DEFAULT_STORE_TIMEOUT, DEFAULT_WRITE_WAIT, OpenMode, StoreOptions, WRITE_QUEUE_WAIT, supported_url,
};
pub use postgres::CHANGES_CHANNEL;
pub use reach::Reachability;
pub use sql::SqlStore;
pub use traits::{
    CreditStore, GrantStore, LogStore, PolicyStore, RecordStore, StoreUpkeep, TenderStore, WAL_RESTART_FRAMES, WAL_RESTART_WAIT,
};
#[cfg(test)]
pub(crate) use types::build_profile;
pub use types::{
    BidRow, CHANGED_CODES_LISTED, ChangeSink, ProfileRow, RecordRow, RecordSource, StoredCheckpoint, StoredPolicy, WalCheckpoint, WalMode,
    WriteMode, WriteOutcome,
};

use std::sync::Arc;

/// A handle to a credit store on either backend; cloning it is cheap.
#[derive(Clone)]
pub struct Store(Arc<dyn CreditStore>);

impl Store {
    /// Opens (creating if needed) and migrates the store a URL names, with
    /// [`DEFAULT_CONNECTIONS`] pooled connections.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, DEFAULT_CONNECTIONS).await
    }

    /// The same, with `connections` pooled connections (at least one).
    pub async fn open_with(url: &str, connections: u32) -> Result<Store, StoreError> {
        Store::open_options(url, StoreOptions { connections, ..StoreOptions::default() }).await
    }

    /// Opens the store a URL names as `mode` says, with `connections`
    /// pooled connections.
    pub async fn open_as(url: &str, connections: u32, mode: OpenMode) -> Result<Store, StoreError> {
        Store::open_options(url, StoreOptions { connections, mode, ..StoreOptions::default() }).await
    }

    /// The same, with every option. A PostgreSQL that refuses the
    /// connection is an error at once, not after the pool's time-out.
    pub async fn open_options(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let options = StoreOptions { connections: options.connections.max(1), ..options };
        if url.starts_with("sqlite:") {
            Ok(Store::new(sqlite::open(url, options).await?))
        } else if supported_url(url) {
            Ok(Store::new(postgres::open(url, options).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// A handle on `store`, shared by clones (one `Arc`).
    pub fn new(store: impl CreditStore) -> Store {
        Store(Arc::new(store))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn CreditStore;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
