//! What keeps a store in service rather than reading or writing rows: its
//! name, WAL checkpoints, health probes, its own files, and the listener of
//! other processes' commits. [`StoreUpkeep`] for [`SqlStore`].

use super::dialect::{NEWEST_VERSION, Newest, sql_impl};
use super::error::StoreError;
use super::sql::SqlStore;
use super::traits::StoreUpkeep;
use super::types::{ChangeSink, WalCheckpoint, WalMode};
use futures_util::future::BoxFuture;
use std::sync::Arc;

sql_impl! {
    #[async_trait::async_trait]
    impl StoreUpkeep for SqlStore<DB>, reading [] {
        fn backend_name(&self) -> &'static str {
            <DB as super::dialect::Backend>::NAME
        }

        async fn wal_checkpoint(&self, mode: WalMode) -> Result<Option<WalCheckpoint>, StoreError> {
            Ok(DB::wal_checkpoint(&self.pool, mode, self.write_wait).await?)
        }

        /// The file (SQLite): its path, SQLite's descriptors of it, and a read
        /// by a fresh connection; a lost verdict is kept for the writes until a
        /// probe passes again. Then a query through the pool.
        async fn probe(&self) -> Result<(), StoreError> {
            if let Some(file) = &self.file {
                let verdict = match file.check_path().and_then(|()| file.check_descriptors()) {
                    Ok(()) => file.check_readable().await,
                    lost => lost,
                };
                self.keep_verdict(file, &verdict);
                verdict?;
            }
            let read = sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&self.pool).await.map_err(StoreError::from);
            if let (Some(file), Err(StoreError::Lost(_))) = (&self.file, &read) {
                // Sound to a fresh connection, damaged to a pooled one: it still
                // holds what it read while the file was damaged.
                file.renew_connections();
            }
            read?;
            Ok(())
        }

        fn is_own_file(&self, path: &std::path::Path) -> bool {
            self.file.as_ref().is_some_and(|f| f.is(path))
        }

        fn change_listener(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
            DB::change_listener(&self.pool, sink)
        }
    }
}
