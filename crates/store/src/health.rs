//! The readiness round trip.

use agentd_core::StoreResult;
use agentd_core::store::Health;

use crate::error::map_err;
use crate::sql::impl_for_backends;

impl_for_backends!(Health {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await.map(drop).map_err(|e| map_err("database", e))
    }
});
