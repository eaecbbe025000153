//! Approvals of risky tool calls, and grants.
//!
//! Every change here that can resume a run locks the run's row first (the same row
//! `finish_attempt` fences), then settles the approval with a conditional update
//! (`WHERE status = 'pending'`): concurrent deciders serialise on the row, exactly one of them
//! changes the approval, and the others read the decision that stands.

use agentd_core::approval::{
    Approval, ApprovalStatus, Decided, Decision, Grant, GrantScope, NewApproval, action_hash,
};
use agentd_core::page::{Page, PageRequest};
use agentd_core::run::{Lease, NewEvent, RunStatus, event};
use agentd_core::signal::Signal;
use agentd_core::store::ApprovalStore;
use agentd_core::{ApprovalId, GrantId, ProjectId, RunId, StoreError, StoreResult, UserId};
use serde_json::{Value, json};
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::{impl_for_backends, impl_inherent_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid, rfc3339};

const ENTITY: &str = "approval";

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: DbUuid,
    run_id: DbUuid,
    owner_id: DbUuid,
    project_id: Option<DbUuid>,
    call_id: String,
    tool: String,
    arguments: Json<Value>,
    action_hash: String,
    risk: String,
    reason: String,
    grant_key: Option<String>,
    status: String,
    decision_reason: Option<String>,
    scope: Option<String>,
    decided_by: Option<DbUuid>,
    decided_at: Option<DbTime>,
    expires_at: DbTime,
    created_at: DbTime,
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;

    fn try_from(r: ApprovalRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id.0.into(),
            run_id: r.run_id.0.into(),
            owner_id: r.owner_id.0.into(),
            project_id: r.project_id.map(|p| p.0.into()),
            call_id: r.call_id,
            tool: r.tool,
            arguments: r.arguments.0,
            action_hash: r.action_hash,
            risk: r.risk.parse().map_err(corrupt)?,
            reason: r.reason,
            grant_key: r.grant_key,
            status: r.status.parse().map_err(corrupt)?,
            decision_reason: r.decision_reason,
            scope: r.scope.map(|s| s.parse()).transpose().map_err(corrupt)?,
            decided_by: r.decided_by.map(|u| u.0.into()),
            decided_at: r.decided_at.map(|t| t.0),
            expires_at: r.expires_at.0,
            created_at: r.created_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: DbUuid,
    owner_id: DbUuid,
    project_id: Option<DbUuid>,
    run_id: Option<DbUuid>,
    tool: String,
    key: String,
    created_by: DbUuid,
    created_at: DbTime,
}

impl From<GrantRow> for Grant {
    fn from(r: GrantRow) -> Self {
        Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            project_id: r.project_id.map(|p| p.0.into()),
            run_id: r.run_id.map(|p| p.0.into()),
            tool: r.tool,
            key: r.key,
            created_by: r.created_by.0.into(),
            created_at: r.created_at.0,
        }
    }
}

macro_rules! select_approvals {
    ($($rest:literal),*) => {
        concat!(
            "SELECT id, run_id, owner_id, project_id, call_id, tool, arguments, action_hash, risk, \
             reason, grant_key, status, decision_reason, scope, decided_by, decided_at, expires_at, \
             created_at FROM approvals ",
            $($rest),*
        )
    };
}

/// What settles a pending approval.
enum Settle {
    Decide { decision: Decision, scope: GrantScope, by: UserId, reason: Option<String> },
    Expire,
}

fn requested_data(a: &Approval) -> Value {
    json!({
        "approval_id": a.id,
        "call_id": a.call_id,
        "tool": a.tool,
        "arguments": a.arguments,
        "risk": a.risk.as_str(),
        "reason": a.reason,
        "available_decisions": a.available_decisions(),
        "expires_at": rfc3339(a.expires_at),
    })
}

fn decided_data(a: &Approval) -> Value {
    json!({
        "approval_id": a.id,
        "call_id": a.call_id,
        "tool": a.tool,
        "status": a.status.as_str(),
        "scope": a.scope.map(GrantScope::as_str),
        "reason": a.decision_reason,
        "decided_by": a.decided_by,
    })
}

/// How many approvals of run `$1` are pending.
pub(crate) const PENDING_COUNT_SQL: &str =
    "SELECT COUNT(*) FROM approvals WHERE run_id = $1 AND status = 'pending'";

/// Marks the pending approvals of run `$1` cancelled at `$2`.
pub(crate) const CANCEL_PENDING_SQL: &str = "UPDATE approvals SET status = 'cancelled', \
    decided_at = $2 WHERE run_id = $1 AND status = 'pending'";

impl_inherent_for_backends!(Db => {
    async fn approval_in(
        &self,
        conn: &mut sqlx::Transaction<'_, Db>,
        id: ApprovalId,
    ) -> StoreResult<Approval> {
        sqlx::query_as::<_, ApprovalRow>(select_approvals!("WHERE id = $1"))
            .bind(DbUuid::from(id))
            .fetch_one(&mut **conn)
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    /// Whether the run has approvals nobody has decided yet.
    pub(crate) async fn has_pending_approvals(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        run: RunId,
    ) -> StoreResult<bool> {
        let (n,): (i64,) = sqlx::query_as(PENDING_COUNT_SQL)
        .bind(DbUuid::from(run))
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(n > 0)
    }

    /// Marks the run's pending approvals `cancelled` (the run ended without them).
    pub(crate) async fn cancel_pending_approvals(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        run: RunId,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(CANCEL_PENDING_SQL)
        .bind(DbUuid::from(run))
        .bind(DbTime(now))
        .execute(&mut **tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(())
    }

    /// Settles one approval (see the module comment) and resumes its run when nothing else
    /// holds it. `owner` limits which approvals the caller may see.
    async fn settle(
        &self,
        owner: Option<UserId>,
        id: ApprovalId,
        how: Settle,
    ) -> StoreResult<Decided> {
        let run_id: Option<(DbUuid,)> = sqlx::query_as(
            "SELECT run_id FROM approvals WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)",
        )
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .fetch_optional(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let Some((run_id,)) = run_id else {
            return Err(StoreError::NotFound { entity: ENTITY });
        };
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        // Lock the run's row: deciders and the worker parking the run serialise here.
        let status: Option<(String,)> =
            sqlx::query_as("UPDATE runs SET updated_at = updated_at WHERE id = $1 RETURNING status")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?;
        let Some((run_status,)) = status else {
            return Err(StoreError::NotFound { entity: ENTITY });
        };
        let current = self.approval_in(&mut tx, id).await?;
        if current.status != ApprovalStatus::Pending {
            return Ok(Decided::Already(current));
        }
        let expired = current.expires_at <= now;
        let (status, scope, by, reason) = match how {
            Settle::Decide { .. } | Settle::Expire if expired => (
                ApprovalStatus::Expired,
                None,
                None,
                Some("nobody decided before the approval expired".to_owned()),
            ),
            Settle::Expire => return Ok(Decided::Already(current)),
            Settle::Decide { decision: Decision::Approve, scope, by, reason } => {
                (ApprovalStatus::Approved, Some(scope), Some(by), reason)
            }
            Settle::Decide { decision: Decision::Reject, by, reason, .. } => {
                (ApprovalStatus::Rejected, None, Some(by), reason)
            }
        };
        let changed = sqlx::query(
            "UPDATE approvals SET status = $2, scope = $3, decided_by = $4, decision_reason = $5, \
             decided_at = $6 WHERE id = $1 AND status = 'pending'",
        )
        .bind(DbUuid::from(id))
        .bind(status.as_str())
        .bind(scope.map(GrantScope::as_str))
        .bind(by.map(DbUuid::from))
        .bind(reason.as_deref())
        .bind(DbTime(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        if changed.rows_affected() == 0 {
            // Only reachable if the row lock above did not serialise us; read what stands.
            let current = self.approval_in(&mut tx, id).await?;
            return Ok(Decided::Already(current));
        }
        let settled = self.approval_in(&mut tx, id).await?;
        if let (Some(scope @ (GrantScope::Run | GrantScope::Project)), Some(key), Some(by)) =
            (settled.scope, settled.grant_key.as_deref(), settled.decided_by)
        {
            sqlx::query(
                "INSERT INTO grants (id, owner_id, project_id, run_id, tool, key, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(DbUuid::from(GrantId::new()))
            .bind(DbUuid::from(settled.owner_id))
            .bind(settled.project_id.map(DbUuid::from))
            .bind((scope == GrantScope::Run).then_some(DbUuid::from(settled.run_id)))
            .bind(&settled.tool)
            .bind(key)
            .bind(DbUuid::from(by))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err("grant", e))?;
        }
        let mut events = vec![NewEvent::new(event::APPROVAL_DECIDED, decided_data(&settled))];
        let mut signals = Vec::new();
        let waiting = run_status == RunStatus::WaitingApproval.as_str();
        if waiting && !self.has_pending_approvals(&mut tx, settled.run_id).await? {
            sqlx::query(
                "UPDATE runs SET status = 'running', scheduled_at = $2, updated_at = $2, \
                 lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
            )
            .bind(DbUuid::from(settled.run_id))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
            events.push(NewEvent::new(
                event::RUN_STATUS,
                json!({"status": RunStatus::Running, "previous": RunStatus::WaitingApproval}),
            ));
            signals.push(Signal::RunsReady);
        }
        let seq = self.insert_events(&mut tx, settled.run_id, events, now).await?;
        signals.push(Signal::RunEvent { run: settled.run_id, seq });
        for s in &signals {
            self.announce(&mut tx, *s).await.map_err(|e| map_err(ENTITY, e))?;
        }
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(if status == ApprovalStatus::Expired {
            Decided::Already(settled)
        } else {
            Decided::Now(settled)
        })
    }
});

impl_for_backends!(ApprovalStore {
    async fn request_approval(&self, lease: &Lease, new: NewApproval) -> StoreResult<Approval> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        self.fence(&mut tx, lease, now).await?;
        let existing = sqlx::query_as::<_, ApprovalRow>(select_approvals!(
            "WHERE run_id = $1 AND call_id = $2"
        ))
        .bind(DbUuid::from(lease.run_id))
        .bind(&new.call_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        if let Some(row) = existing {
            return row.try_into();
        }
        let (owner, project): (DbUuid, Option<DbUuid>) =
            sqlx::query_as("SELECT owner_id, project_id FROM runs WHERE id = $1")
                .bind(DbUuid::from(lease.run_id))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| map_err("run", e))?;
        let id = ApprovalId::new();
        sqlx::query(
            "INSERT INTO approvals (id, run_id, owner_id, project_id, call_id, tool, arguments, \
             action_hash, risk, reason, grant_key, status, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13)",
        )
        .bind(DbUuid::from(id))
        .bind(DbUuid::from(lease.run_id))
        .bind(owner)
        .bind(project)
        .bind(&new.call_id)
        .bind(&new.tool)
        .bind(Json(&new.arguments))
        .bind(action_hash(&new.tool, &new.arguments))
        .bind(new.risk.as_str())
        .bind(&new.reason)
        .bind(new.grant_key.as_deref())
        .bind(DbTime(new.expires_at))
        .bind(DbTime(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let approval = self.approval_in(&mut tx, id).await?;
        let seq = self
            .insert_events(
                &mut tx,
                lease.run_id,
                vec![NewEvent::new(event::APPROVAL_REQUESTED, requested_data(&approval))],
                now,
            )
            .await?;
        let signal = Signal::RunEvent { run: lease.run_id, seq };
        self.announce(&mut tx, signal).await.map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        self.broadcast(signal);
        Ok(approval)
    }

    async fn approval(&self, owner: Option<UserId>, id: ApprovalId) -> StoreResult<Approval> {
        sqlx::query_as::<_, ApprovalRow>(select_approvals!(
            "WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"
        ))
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .fetch_one(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?
        .try_into()
    }

    async fn approval_for_call(&self, run: RunId, call_id: &str) -> StoreResult<Option<Approval>> {
        sqlx::query_as::<_, ApprovalRow>(select_approvals!("WHERE run_id = $1 AND call_id = $2"))
            .bind(DbUuid::from(run))
            .bind(call_id)
            .fetch_optional(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .map(Approval::try_from)
            .transpose()
    }

    async fn list_approvals(
        &self,
        owner: Option<UserId>,
        status: Option<ApprovalStatus>,
        page: PageRequest<ApprovalId>,
    ) -> StoreResult<Page<Approval, ApprovalId>> {
        let rows = sqlx::query_as::<_, ApprovalRow>(select_approvals!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR status = $2) ",
            "AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT +$4"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(status.map(ApprovalStatus::as_str))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let items = rows.into_iter().map(Approval::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |a| a.id))
    }

    async fn decide_approval(
        &self,
        owner: Option<UserId>,
        id: ApprovalId,
        decision: Decision,
        scope: GrantScope,
        decided_by: UserId,
        reason: Option<String>,
    ) -> StoreResult<Decided> {
        self.settle(owner, id, Settle::Decide { decision, scope, by: decided_by, reason }).await
    }

    async fn expire_approvals(&self, limit: u32) -> StoreResult<u32> {
        let due: Vec<(DbUuid,)> = sqlx::query_as(
            "SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT +$2",
        )
        .bind(DbTime(self.now()))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let mut expired = 0;
        for (id,) in due {
            match self.settle(None, id.0.into(), Settle::Expire).await? {
                Decided::Already(a) if a.status == ApprovalStatus::Expired => expired += 1,
                _ => {}
            }
        }
        Ok(expired)
    }

    async fn granted(
        &self,
        owner: UserId,
        project: Option<ProjectId>,
        run: RunId,
        tool: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let found: Option<(DbUuid,)> = sqlx::query_as(
            "SELECT id FROM grants WHERE owner_id = $1 AND tool = $2 AND key = $3 \
             AND (run_id = $4 OR (run_id IS NULL AND project_id = $5)) LIMIT 1",
        )
        .bind(DbUuid::from(owner))
        .bind(tool)
        .bind(key)
        .bind(DbUuid::from(run))
        .bind(project.map(DbUuid::from))
        .fetch_optional(self.reader())
        .await
        .map_err(|e| map_err("grant", e))?;
        Ok(found.is_some())
    }

    async fn list_grants(
        &self,
        owner: Option<UserId>,
        page: PageRequest<GrantId>,
    ) -> StoreResult<Page<Grant, GrantId>> {
        let rows = sqlx::query_as::<_, GrantRow>(
            "SELECT id, owner_id, project_id, run_id, tool, key, created_by, created_at FROM grants \
             WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT +$3",
        )
        .bind(owner.map(DbUuid::from))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err("grant", e))?;
        let items = rows.into_iter().map(Grant::from).collect();
        Ok(Page::from_overfetch(items, page.limit, |g: &Grant| g.id))
    }

    async fn delete_grant(&self, owner: Option<UserId>, id: GrantId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM grants WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)")
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .execute(self.writer())
            .await
            .map_err(|e| map_err("grant", e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "grant" });
        }
        Ok(())
    }
});
