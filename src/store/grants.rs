//! Committee grants: links handed out, redeemed once, revoked.
//! [`GrantStore`] for [`SqlStore`].

use super::dialect::sql_impl;
use super::error::StoreError;
use super::sql::{SqlStore, WriteKind};
use super::traits::GrantStore;
use crate::domain::tender::{CommitteeGrant, TenderId};
use chrono::{DateTime, Utc};
use sqlx::FromRow;

#[derive(FromRow)]
pub struct GrantRow {
    grant_id: String,
    tender_id: String,
    member_ref: String,
    granted_by: String,
    granted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<GrantRow> for CommitteeGrant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<CommitteeGrant, StoreError> {
        Ok(CommitteeGrant {
            tender_id: TenderId::parse(&r.tender_id).map_err(|e| StoreError::Corrupt(format!("grant {}: {e}", r.grant_id)))?,
            grant_id: r.grant_id,
            member_ref: r.member_ref,
            granted_by: r.granted_by,
            granted_at: r.granted_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            revoked_at: r.revoked_at,
        })
    }
}

const GRANT_COLUMNS: &str = "grant_id, tender_id, member_ref, granted_by, granted_at, expires_at, used_at, revoked_at";
const INSERT_GRANT: &str = "INSERT INTO committee_grants (grant_id, tender_id, member_ref, granted_by, granted_at, \
     expires_at, link_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const REDEEM_GRANT: &str = "UPDATE committee_grants SET used_at = $1, session_sha256 = $2 \
     WHERE link_sha256 = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1";
const REVOKE_GRANT: &str = "UPDATE committee_grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL";

sql_impl! {
    #[async_trait::async_trait]
    impl GrantStore for SqlStore<DB>, reading [GrantRow] {
        async fn insert_grant(&self, g: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Small).await?;
            sqlx::query(INSERT_GRANT)
                .bind(g.grant_id.as_str())
                .bind(g.tender_id.as_str())
                .bind(g.member_ref.as_str())
                .bind(g.granted_by.as_str())
                .bind(g.granted_at)
                .bind(g.expires_at)
                .bind(link_sha256)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        /// Uses a link once: binds the session to it and returns the grant, or
        /// `None` for a link unknown, used, revoked or expired.
        async fn redeem_grant(&self, link_sha256: &str, session_sha256: &str, now: DateTime<Utc>) -> Result<Option<CommitteeGrant>, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Small).await?;
            let done = sqlx::query(REDEEM_GRANT).bind(now).bind(session_sha256).bind(link_sha256).execute(&mut *tx).await?;
            if DB::rows_affected(&done) != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let grant = Self::grant_in(&mut tx, "session_sha256", session_sha256).await?;
            tx.commit().await?;
            Ok(grant)
        }

        async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError> {
            self.grant_by("session_sha256", session_sha256).await
        }

        async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError> {
            self.grant_by("grant_id", grant_id).await
        }

        /// Revokes a grant; false if it was unknown or already revoked.
        async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Small).await?;
            let done = sqlx::query(REVOKE_GRANT).bind(now).bind(grant_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(DB::rows_affected(&done) == 1)
        }
    }
}

sql_impl! {
    impl SqlStore<DB>, reading [GrantRow] {
        async fn grant_by(&self, column: &str, value: &str) -> Result<Option<CommitteeGrant>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            Self::grant_in(&mut conn, column, value).await
        }

        async fn grant_in(conn: &mut DB::Connection, column: &str, value: &str) -> Result<Option<CommitteeGrant>, StoreError> {
            let sql = format!("SELECT {GRANT_COLUMNS} FROM committee_grants WHERE {column} = $1");
            let row: Option<GrantRow> = sqlx::query_as(&sql).bind(value).fetch_optional(&mut *conn).await?;
            row.map(CommitteeGrant::try_from).transpose()
        }
    }
}
