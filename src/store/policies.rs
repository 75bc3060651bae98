//! Policy versions, kept by digest: [`PolicyStore`] for [`SqlStore`].

use super::dialect::sql_impl;
use super::error::StoreError;
use super::sql::{SqlStore, WriteKind};
use super::traits::PolicyStore;
use super::types::StoredPolicy;
use chrono::Utc;

const PUT_POLICY: &str = "INSERT INTO policies (digest, policy_id, source, loaded_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (digest) DO NOTHING";
const POLICY_BY_DIGEST: &str = "SELECT policy_id, source FROM policies WHERE digest = $1";

sql_impl! {
    #[async_trait::async_trait]
    impl PolicyStore for SqlStore<DB>, reading [StoredPolicy] {
        async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Small).await?;
            sqlx::query(PUT_POLICY).bind(digest).bind(id).bind(source).bind(Utc::now()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError> {
            Ok(sqlx::query_as(POLICY_BY_DIGEST).bind(digest).fetch_optional(&self.pool).await?)
        }
    }
}
