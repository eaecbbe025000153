//! The agent loop of one attempt: replay the journal, then alternate model calls and tool calls
//! until the model gives a final answer or a limit stops it.
//!
//! Durability rules, in the order the code applies them:
//! - a model reply is recorded (journal + `llm.message`) before anything acts on it, so after a
//!   crash it is read back, never requested again;
//! - a tool call is recorded `started` before it runs and `completed` with its result after; on
//!   replay a completed call is read back, a started read-only call runs again, and a started
//!   call with side effects becomes `unknown_outcome`: the model is told, and it is never run
//!   again silently. A read-only call that needs nobody's approval is recorded started in the
//!   same transaction as the reply that asks for it; any other call in a transaction of its own,
//!   once its approval (if any) is settled;
//! - compaction (older turns replaced by a summary) is a journal step too, so replay rebuilds
//!   exactly the prompt the model saw.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use agentd_core::approval::{ApprovalStatus, NewApproval, Risk, action_hash};
use agentd_core::conversation::{MessageRole, NewMessage};
use agentd_core::run::{
    Finish, Lease, NewEvent, Run, RunError, RunStatus, RunUsage, Step, StepKind, StepStatus, event,
};
use agentd_core::tool::{Assessment, Tool, ToolContext, ToolOutput};
use agentd_core::workspace::Workspace;
use agentd_core::{Store, StoreError};
use agentd_llm::{
    ChatRequest, ChatResponse, Content, LlmClient, LlmError, LlmRouter, Message, RequestContext,
    Role, StreamEvent, ToolCall, ToolDefinition,
};
use futures::StreamExt as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::RunnerConfig;
use crate::profile::{AgentProfile, ApprovalPolicy};
use crate::workdir::{RunDir, WorkDir};

/// What an attempt ended with.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Tell the store.
    Finish(Finish),
    /// Another worker has the run (or it ended): stop without writing anything.
    LeaseLost,
}

/// What the approval policy says about one tool call.
enum Gate {
    /// Run it.
    Go,
    /// Park the run until a human decides.
    Wait,
    /// Do not run it; tell the model this.
    Refuse(String),
}

/// What the approval policy decides about a call before asking the store anything.
enum Verdict {
    /// Decided: no approval or grant to look up.
    Decided(Gate),
    /// Needs an approval, unless a grant covers it.
    Ask { risk: Risk, reason: String, grant_key: Option<String> },
}

/// Why the loop stops early.
enum Stop {
    Finish(Finish),
    LeaseLost,
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::LeaseLost => Self::LeaseLost,
            other => Self::Finish(Finish::Retry {
                after: Duration::from_secs(5),
                error: RunError::new("store_unavailable", format!("the store failed: {other}")),
            }),
        }
    }
}

fn fail(error_type: &str, message: impl Into<String>) -> Stop {
    Stop::Finish(Finish::Done {
        status: RunStatus::Failed,
        result: None,
        error: Some(RunError::new(error_type, message)),
    })
}

/// Progress shared with the heartbeat, which writes it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) percent: AtomicU8,
    pub(crate) step: std::sync::Mutex<String>,
}

impl Progress {
    fn set(&self, percent: u8, step: impl Into<String>) {
        self.percent.store(percent.min(99), Ordering::Relaxed);
        if let Ok(mut s) = self.step.lock() {
            *s = step.into();
        }
    }
}

/// Everything one attempt needs.
pub(crate) struct Attempt {
    pub(crate) run: Run,
    pub(crate) lease: Lease,
    pub(crate) profile: AgentProfile,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) workspace: Option<Arc<dyn Workspace>>,
    /// Where commands and searches work, made on first need (see `workdir`).
    pub(crate) workdir: Option<Arc<RunDir>>,
    /// The project's network setting for commands, if it has one.
    pub(crate) network: Option<bool>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) llm: Arc<LlmRouter>,
    pub(crate) config: Arc<RunnerConfig>,
    /// The run was cancelled (by its user) or its lease is gone: stop now.
    pub(crate) cancel: CancellationToken,
    /// The worker is stopping: give the run back at the next step boundary.
    pub(crate) stop: CancellationToken,
    pub(crate) progress: Arc<Progress>,
}

/// Cuts `text` to about `limit` bytes, keeping its head and tail.
pub(crate) fn clip(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let half = limit / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n… [{} bytes omitted; the full output is kept] …\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

fn now() -> OffsetDateTime {
    agentd_core::clock::truncate_to_micros(OffsetDateTime::now_utc())
}

/// The messages a fresh run starts from.
fn opening(profile: &AgentProfile, run: &Run, history: Vec<Message>) -> Vec<Message> {
    let mut messages = vec![Message::system(profile.system_prompt.clone())];
    messages.extend(history);
    let mut task = run.input.task.clone();
    if let Some(context) = &run.input.context {
        task.push_str("\n\nContext:\n");
        task.push_str(&serde_json::to_string_pretty(context).unwrap_or_default());
    }
    messages.push(Message::user(task));
    messages
}

/// The tool calls of the last assistant message that have no result yet.
fn pending_calls(messages: &[Message]) -> Vec<ToolCall> {
    let Some(index) = messages.iter().rposition(|m| m.role == Role::Assistant) else {
        return Vec::new();
    };
    let answered: Vec<&str> = messages[index + 1..]
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|c| match c {
            Content::ToolResult { call_id, .. } => Some(call_id.as_str()),
            Content::Text { .. } | Content::ToolCall(_) => None,
        })
        .collect();
    messages[index].tool_calls().filter(|c| !answered.contains(&c.id.as_str())).cloned().collect()
}

/// The final answer, when the model gave one: the last message is the model's, with no calls.
fn final_answer(messages: &[Message]) -> Option<String> {
    let last = messages.last()?;
    (last.role == Role::Assistant && last.tool_calls().next().is_none()).then(|| last.text())
}

fn usage_of(response: &ChatResponse, llm: &LlmRouter) -> RunUsage {
    let u = &response.usage;
    let price =
        if response.cache_hit { None } else { llm.price_of(&response.provider, &response.model) };
    let cost = if response.cache_hit {
        Some(0.0)
    } else {
        price.map(|p| p.cost(u).to_string().parse::<f64>().unwrap_or(0.0))
    };
    RunUsage {
        llm_calls: 1,
        input_tokens: u.input_tokens,
        cached_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
        reasoning_tokens: u.reasoning_tokens,
        cost_usd: cost,
        unpriced_calls: cost.is_none(),
    }
}

/// What a completed tool step stores: the result, with large outputs in a blob and the prompt
/// text (clipped) kept so that replay rebuilds the same prompt.
fn tool_step_output(
    call: &ToolCall,
    output: &ToolOutput,
    prompt: &str,
    blob: Option<String>,
) -> Value {
    json!({
        "call_id": call.id,
        "is_error": output.is_error,
        "size": output.content.len(),
        "content": if blob.is_some() { Value::Null } else { Value::String(output.content.clone()) },
        "prompt": prompt,
        "blob": blob,
    })
}

impl Attempt {
    /// Runs the attempt to its end.
    pub(crate) async fn execute(self) -> Outcome {
        match self.drive().await {
            Ok(finish) | Err(Stop::Finish(finish)) => Outcome::Finish(finish),
            Err(Stop::LeaseLost) => Outcome::LeaseLost,
        }
    }

    fn stopped(&self) -> Option<Stop> {
        if self.cancel.is_cancelled() {
            return Some(Stop::Finish(Finish::Done {
                status: RunStatus::Cancelled,
                result: None,
                error: Some(RunError::new("cancelled", "the run was cancelled")),
            }));
        }
        if self.stop.is_cancelled() {
            return Some(Stop::Finish(Finish::Release));
        }
        None
    }

    async fn drive(&self) -> Result<Finish, Stop> {
        let started = Instant::now();
        let journal = self.store.steps(self.run.id).await?;
        let history = self.history().await?;
        let mut messages = opening(&self.profile, &self.run, history);
        let mut next_seq = journal.last().map_or(1, |s| s.seq + 1);
        let mut llm_steps = 0u32;
        let mut usage = self.run.usage.clone();
        // Calls whose step number is already chosen, by call id, with whether they are already
        // journaled as started: read-only calls that were started but not completed (run again
        // under the same step), and the calls of the latest reply.
        let mut planned: HashMap<String, (u32, bool)> = HashMap::new();
        for step in journal {
            match (step.kind, step.status) {
                (StepKind::Llm, StepStatus::Completed) => {
                    let response: ChatResponse =
                        serde_json::from_value(step.output.unwrap_or_default()).map_err(|e| {
                            fail("journal_corrupt", format!("step {}: {e}", step.seq))
                        })?;
                    messages.push(Message::from_response(&response));
                    llm_steps += 1;
                }
                (StepKind::Compaction, StepStatus::Completed) => {
                    let output = step.output.unwrap_or_default();
                    apply_compaction(&mut messages, &output);
                }
                (StepKind::Tool, StepStatus::Completed) => {
                    let output = step.output.unwrap_or_default();
                    let call_id = output["call_id"].as_str().unwrap_or_default().to_owned();
                    let prompt = output["prompt"].as_str().unwrap_or_default().to_owned();
                    let is_error = output["is_error"].as_bool().unwrap_or(false);
                    messages.push(Message::tool_result(call_id, prompt, is_error));
                }
                (StepKind::Tool, StepStatus::UnknownOutcome) => {
                    let call_id = step.input["call_id"].as_str().unwrap_or_default().to_owned();
                    messages.push(Message::tool_result(
                        call_id,
                        unknown_outcome_message(&step.name),
                        true,
                    ));
                }
                (StepKind::Tool, StepStatus::Started) if step.side_effects => {
                    self.mark_unknown_outcome(&step, &mut messages).await?;
                }
                (StepKind::Tool, StepStatus::Started) => {
                    if let Some(call_id) = step.input["call_id"].as_str() {
                        planned.insert(call_id.to_owned(), (step.seq, false));
                    }
                }
                (
                    StepKind::Llm | StepKind::Compaction,
                    StepStatus::Started | StepStatus::UnknownOutcome,
                ) => {}
            }
        }

        loop {
            if let Some(stop) = self.stopped() {
                return Err(stop);
            }
            let pending = pending_calls(&messages);
            if !pending.is_empty() {
                for call in pending {
                    if let Some(stop) = self.stopped() {
                        return Err(stop);
                    }
                    let (seq, journaled) = planned.remove(&call.id).unwrap_or_else(|| {
                        next_seq += 1;
                        (next_seq - 1, false)
                    });
                    self.run_tool(seq, journaled, &call, &mut messages).await?;
                }
                continue;
            }
            if let Some(text) = final_answer(&messages) {
                return self.succeed(text).await;
            }
            self.check_limits(llm_steps, &usage, started)?;
            let percent = u8::try_from(
                u64::from(llm_steps) * 100 / u64::from(self.profile.limits.max_steps.max(1)),
            )
            .unwrap_or(99);
            self.progress.set(percent, format!("model call {}", llm_steps + 1));
            match self.call_model(next_seq, &messages).await {
                Ok((response, tail)) => {
                    let delta = usage_of(&response, &self.llm);
                    usage.add(&delta);
                    let calls = self.record_reply(next_seq, &response, delta, tail).await?;
                    next_seq += 1 + u32::try_from(calls.len()).unwrap_or(u32::MAX);
                    planned.extend(calls);
                    messages.push(Message::from_response(&response));
                    llm_steps += 1;
                }
                Err(LlmError::ContextOverflow { message }) => {
                    let compacted = self.compact(next_seq, &mut messages, &mut usage).await?;
                    if !compacted {
                        return Err(fail("context_overflow", message));
                    }
                    next_seq += 1;
                }
                Err(LlmError::Cancelled) => {}
                Err(err) => return Err(self.llm_failure(err)),
            }
        }
    }

    /// The conversation's earlier messages, when the run continues one.
    async fn history(&self) -> Result<Vec<Message>, Stop> {
        let Some(conversation) = self.run.conversation_id else { return Ok(Vec::new()) };
        let messages = self.store.messages(conversation).await?;
        Ok(messages
            .into_iter()
            .filter(|m| m.run_id != Some(self.run.id))
            .map(|m| match m.role {
                MessageRole::User => Message::user(m.content),
                MessageRole::Assistant => Message::assistant(m.content),
                MessageRole::System => Message::system(m.content),
            })
            .collect())
    }

    fn check_limits(&self, llm_steps: u32, usage: &RunUsage, started: Instant) -> Result<(), Stop> {
        let limits = &self.profile.limits;
        if llm_steps >= limits.max_steps {
            return Err(fail(
                "max_steps_exceeded",
                format!("the run reached its limit of {} model calls", limits.max_steps),
            ));
        }
        let active_ms =
            self.run.active_ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if active_ms >= limits.max_active_seconds.saturating_mul(1000) {
            return Err(Stop::Finish(Finish::Done {
                status: RunStatus::TimedOut,
                result: None,
                error: Some(RunError::new(
                    "active_time_exceeded",
                    format!("the run worked for its limit of {} s", limits.max_active_seconds),
                )),
            }));
        }
        if let Some(max) = limits.max_tokens
            && usage.total_tokens() >= max
        {
            return Err(fail(
                "token_budget_exceeded",
                format!("the run used its budget of {max} tokens"),
            ));
        }
        if let (Some(max), Some(spent)) = (limits.max_cost_usd, usage.cost_usd)
            && spent >= max
        {
            return Err(fail(
                "cost_budget_exceeded",
                format!("the run spent its budget of ${max}"),
            ));
        }
        Ok(())
    }

    fn context(&self, cancel: CancellationToken) -> RequestContext {
        RequestContext {
            run_id: Some(*self.run.id.as_uuid()),
            conversation_id: self.run.conversation_id.map(|c| *c.as_uuid()),
            principal: self.run.owner_id,
            agent_type: self.run.agent.clone(),
            project_id: self.run.project_id,
            cancel,
        }
    }

    /// An interruption token for model calls: a user cancel or a stopping worker (a model call
    /// is cheap to repeat, unlike a tool call, so stopping workers do not wait for it).
    fn interrupt(&self) -> CancellationToken {
        let token = CancellationToken::new();
        let (cancel, stop, t) = (self.cancel.clone(), self.stop.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => t.cancel(),
                () = stop.cancelled() => t.cancel(),
                () = t.cancelled() => {}
            }
        });
        token
    }

    fn request(&self, messages: &[Message]) -> ChatRequest {
        ChatRequest {
            messages: messages.to_vec(),
            tools: self
                .tools
                .iter()
                .map(|t| {
                    let spec = t.spec();
                    ToolDefinition {
                        name: spec.name.to_owned(),
                        description: spec.description.to_owned(),
                        parameters: spec.parameters.clone(),
                    }
                })
                .collect(),
            temperature: self.profile.temperature,
            max_tokens: self.profile.max_output_tokens,
            stop: Vec::new(),
        }
    }

    /// One model call, streamed, its text deltas published (coalesced) as `llm.delta` events;
    /// returns the reply and the text streamed since the last of them, which goes into the
    /// reply's own transaction (one write less per model call).
    async fn call_model(
        &self,
        seq: u32,
        messages: &[Message],
    ) -> Result<(ChatResponse, String), LlmError> {
        let interrupt = self.interrupt();
        let result = self.stream_model(seq, messages, &interrupt).await;
        interrupt.cancel();
        result
    }

    async fn stream_model(
        &self,
        seq: u32,
        messages: &[Message],
        interrupt: &CancellationToken,
    ) -> Result<(ChatResponse, String), LlmError> {
        let ctx = self.context(interrupt.clone());
        let mut stream = self.llm.chat_stream(self.request(messages), &ctx).await?;
        let mut pending = String::new();
        let mut last_flush = Instant::now();
        loop {
            let item = tokio::select! {
                () = interrupt.cancelled() => return Err(LlmError::Cancelled),
                item = stream.next() => item,
            };
            match item {
                Some(Ok(StreamEvent::TextDelta { text })) => {
                    pending.push_str(&text);
                    if pending.len() >= self.config.delta_flush_bytes
                        || last_flush.elapsed() >= self.config.delta_flush_interval
                    {
                        self.flush_delta(seq, &mut pending).await;
                        last_flush = Instant::now();
                    }
                }
                Some(Ok(StreamEvent::Completed(response))) => return Ok((response, pending)),
                Some(Ok(StreamEvent::ToolCallStart { .. } | StreamEvent::ToolCallDelta { .. })) => {
                }
                Some(Err(err)) => return Err(err),
                None => {
                    return Err(LlmError::Protocol {
                        message: "the stream ended without an answer".into(),
                    });
                }
            }
        }
    }

    async fn flush_delta(&self, seq: u32, pending: &mut String) {
        if pending.is_empty() {
            return;
        }
        let text = std::mem::take(pending);
        // Deltas are for live viewers only; the recorded reply is the durable one, so a failed
        // delta write is not worth failing the step over.
        if let Err(err) = self
            .store
            .append_events(
                &self.lease,
                vec![NewEvent::new(event::LLM_DELTA, json!({"step": seq, "text": text}))],
            )
            .await
        {
            tracing::debug!(error = %err, "could not publish a delta");
        }
    }

    /// Journals the reply, with its read-only calls that need nobody's approval as started (see
    /// [`Self::starts_with_reply`]). Returns the step number of each of its calls (numbered in
    /// order after the reply's), with whether it was journaled started here.
    async fn record_reply(
        &self,
        seq: u32,
        response: &ChatResponse,
        usage: RunUsage,
        tail: String,
    ) -> Result<HashMap<String, (u32, bool)>, Stop> {
        let at = now();
        let output = serde_json::to_value(response).unwrap_or_default();
        let step = Step {
            seq,
            kind: StepKind::Llm,
            name: format!("{}/{}", response.provider, response.model),
            status: StepStatus::Completed,
            side_effects: false,
            input: json!({}),
            output: Some(output),
            attempt: self.lease.attempt,
            started_at: at,
            completed_at: Some(at),
        };
        let message = json!({
            "step": seq,
            "text": response.text,
            "tool_calls": response.tool_calls,
            "stop_reason": response.stop_reason,
            "usage": usage,
            "model": response.model,
            "provider": response.provider,
            "cache_hit": response.cache_hit,
        });
        let mut events = Vec::with_capacity(2);
        if !tail.is_empty() {
            events.push(NewEvent::new(event::LLM_DELTA, json!({"step": seq, "text": tail})));
        }
        events.push(NewEvent::new(event::LLM_MESSAGE, message));
        let mut steps = vec![step];
        let mut planned = HashMap::new();
        for call in &response.tool_calls {
            if planned.contains_key(&call.id) {
                // The same id twice: the second is numbered when it runs.
                continue;
            }
            let call_seq = seq + 1 + u32::try_from(planned.len()).unwrap_or(u32::MAX);
            let tool = self.tools.iter().find(|t| t.spec().name == call.name);
            let early = tool.is_some_and(|t| self.starts_with_reply(t.as_ref(), call));
            if early {
                steps.push(self.started_step(call_seq, call, false, at));
                events.push(tool_call_event(call_seq, call));
            }
            planned.insert(call.id.clone(), (call_seq, early));
        }
        self.store.record_steps(&self.lease, steps, Some(usage), events).await?;
        Ok(planned)
    }

    /// Whether a call of `tool` is journaled started together with the reply that asks for it:
    /// it changes nothing (were it interrupted, it would run again) and runs without an
    /// approval. One transaction fewer per call.
    fn starts_with_reply(&self, tool: &dyn Tool, call: &ToolCall) -> bool {
        !tool.spec().side_effects && matches!(self.verdict(tool, call), Verdict::Decided(Gate::Go))
    }

    /// The journal step of a call that starts now.
    fn started_step(
        &self,
        seq: u32,
        call: &ToolCall,
        side_effects: bool,
        started_at: OffsetDateTime,
    ) -> Step {
        Step {
            seq,
            kind: StepKind::Tool,
            name: call.name.clone(),
            status: StepStatus::Started,
            side_effects,
            input: json!({"call_id": call.id, "arguments": call.arguments}),
            output: None,
            attempt: self.lease.attempt,
            started_at,
            completed_at: None,
        }
    }

    /// What the profile's approval policy says about the call, as far as it can say without the
    /// store.
    fn verdict(&self, tool: &dyn Tool, call: &ToolCall) -> Verdict {
        let spec = tool.spec();
        match tool.assess(&call.arguments) {
            Assessment::Forbidden { reason } => Verdict::Decided(Gate::Refuse(format!(
                "The {} call was not run: a command policy rule forbids it. {reason}",
                spec.name
            ))),
            Assessment::Risky { risk, reason, grant_key }
                if self.profile.approval != ApprovalPolicy::Never =>
            {
                Verdict::Ask { risk, reason, grant_key }
            }
            Assessment::Routine
                if self.profile.approval == ApprovalPolicy::Always && spec.side_effects =>
            {
                Verdict::Ask {
                    risk: Risk::Low,
                    reason: format!("the {} agent asks before every change", self.profile.name),
                    grant_key: None,
                }
            }
            Assessment::Routine | Assessment::Risky { .. } => Verdict::Decided(Gate::Go),
        }
    }

    /// Whether the call may run now, under the profile's approval policy (see `Gate`).
    async fn gate(&self, tool: &dyn Tool, call: &ToolCall) -> Result<Gate, Stop> {
        let spec = tool.spec();
        let (risk, reason, grant_key) = match self.verdict(tool, call) {
            Verdict::Decided(gate) => return Ok(gate),
            Verdict::Ask { risk, reason, grant_key } => (risk, reason, grant_key),
        };
        if let Some(key) = &grant_key
            && self
                .store
                .granted(self.run.owner_id, self.run.project_id, self.run.id, spec.name, key)
                .await?
        {
            return Ok(Gate::Go);
        }
        let approval = match self.store.approval_for_call(self.run.id, &call.id).await? {
            Some(approval) => approval,
            None => {
                let expires_at = now()
                    + time::Duration::try_from(self.config.approval_ttl)
                        .unwrap_or(time::Duration::DAY);
                let new = NewApproval {
                    call_id: call.id.clone(),
                    tool: spec.name.to_owned(),
                    arguments: call.arguments.clone(),
                    risk,
                    reason,
                    grant_key,
                    expires_at,
                };
                self.store.request_approval(&self.lease, new).await?;
                return Ok(Gate::Wait);
            }
        };
        Ok(match approval.status {
            ApprovalStatus::Pending => Gate::Wait,
            ApprovalStatus::Approved => {
                // What runs must be byte-for-byte what was approved.
                let now_hash = action_hash(spec.name, &call.arguments);
                let stored_hash = action_hash(&approval.tool, &approval.arguments);
                if now_hash == approval.action_hash && stored_hash == approval.action_hash {
                    Gate::Go
                } else {
                    Gate::Refuse(format!(
                        "The {} call was not run: it differs from the action that was approved.",
                        spec.name
                    ))
                }
            }
            ApprovalStatus::Rejected | ApprovalStatus::Expired | ApprovalStatus::Cancelled => {
                Gate::Refuse(approval.refusal())
            }
        })
    }

    /// Runs a call as step `seq`, journaling it as started first unless `journaled` says that
    /// was done with the reply.
    async fn run_tool(
        &self,
        seq: u32,
        journaled: bool,
        call: &ToolCall,
        messages: &mut Vec<Message>,
    ) -> Result<(), Stop> {
        let tool = self.tools.iter().find(|t| t.spec().name == call.name).cloned();
        let side_effects = tool.as_ref().is_some_and(|t| t.spec().side_effects);
        let refusal = match &tool {
            Some(tool) => match self.gate(tool.as_ref(), call).await? {
                Gate::Go => None,
                Gate::Wait => return Err(Stop::Finish(Finish::WaitForApproval)),
                Gate::Refuse(reason) => Some(reason),
            },
            None => None,
        };
        let step = self.started_step(seq, call, side_effects, now());
        if let Some(reason) = refusal {
            // Never started: the journal records the call as completed with the refusal.
            let output = ToolOutput::error(reason);
            return self.complete_tool(step, call, &output, messages).await;
        }
        // Made before the call is journaled as started: a copy that cannot be made leaves no
        // call of unknown outcome behind.
        let workdir = self.dir_for(tool.as_deref()).await?;
        self.progress
            .set(self.progress.percent.load(Ordering::Relaxed), format!("tool {}", call.name));
        if !journaled {
            self.store
                .record_step(&self.lease, step.clone(), None, vec![tool_call_event(seq, call)])
                .await?;
        }
        let output = match &tool {
            Some(tool) => {
                let ctx = ToolContext {
                    run_id: self.run.id,
                    workspace: self.workspace.clone(),
                    dir: workdir.as_ref().map(|w| w.path.clone()),
                    network: self.network,
                    log_dir: workdir.as_ref().and_then(|w| w.logs.clone()),
                    cancel: self.cancel.clone(),
                };
                let mut output = tool.call(&ctx, call.arguments.clone()).await;
                if side_effects {
                    self.sync_workdir(&mut output).await?;
                }
                output
            }
            None => ToolOutput::error(format!(
                "there is no tool named {:?}; the tools are: {}",
                call.name,
                self.tools.iter().map(|t| t.spec().name).collect::<Vec<_>>().join(", ")
            )),
        };
        self.complete_tool(step, call, &output, messages).await
    }

    /// The working directory for a call of `tool`: made now if the tool works in a directory,
    /// otherwise only if an earlier call made it.
    async fn dir_for(&self, tool: Option<&dyn Tool>) -> Result<Option<Arc<WorkDir>>, Stop> {
        let Some(dir) = &self.workdir else { return Ok(None) };
        if !tool.is_some_and(|t| t.needs_directory()) {
            return Ok(dir.made().cloned());
        }
        dir.get().await.map(|w| w.cloned()).map_err(|err| {
            Stop::Finish(Finish::Retry {
                after: self.config.retry_delay(self.run.failures),
                error: RunError::new("workspace_unavailable", err.to_string()),
            })
        })
    }

    /// After a call with side effects, brings the project and the run's copy of it back in
    /// step (see `workdir`); a change that could not be kept is noted in the call's result.
    /// Nothing to do when no copy was made: the file tools write to the project itself.
    async fn sync_workdir(&self, output: &mut ToolOutput) -> Result<(), Stop> {
        let (Some(workdir), Some(workspace)) =
            (self.workdir.as_ref().and_then(|d| d.made()), &self.workspace)
        else {
            return Ok(());
        };
        match workdir
            .sync(workspace.as_ref(), agentd_core::workspace::Author::Run(self.run.id))
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(note)) => {
                output.content.push('\n');
                output.content.push_str(&note);
                Ok(())
            }
            // The call's effects are uncertain in the project: leave the step started, so that
            // a later attempt (which starts from the project) reports its outcome as unknown.
            Err(err) => Err(Stop::Finish(Finish::Retry {
                after: self.config.retry_delay(self.run.failures),
                error: RunError::new(
                    "workspace_unavailable",
                    format!("could not save the working directory's changes: {err}"),
                ),
            })),
        }
    }

    /// Records a tool call's result (in the journal and as `tool.result`) and gives it to the
    /// model.
    async fn complete_tool(
        &self,
        mut step: Step,
        call: &ToolCall,
        output: &ToolOutput,
        messages: &mut Vec<Message>,
    ) -> Result<(), Stop> {
        let seq = step.seq;
        let prompt = clip(&output.content, self.config.tool_output_prompt_bytes);
        let blob = if output.content.len() > self.config.inline_output_bytes {
            Some(self.store.put_run_blob(&self.lease, output.content.as_bytes().to_vec()).await?)
        } else {
            None
        };
        step.status = StepStatus::Completed;
        step.output = Some(tool_step_output(call, output, &prompt, blob.map(|b| b.to_string())));
        step.completed_at = Some(now());
        let preview = clip(&output.content, 4096);
        self.store
            .record_step(
                &self.lease,
                step,
                None,
                vec![NewEvent::new(
                    event::TOOL_RESULT,
                    json!({
                        "step": seq,
                        "call_id": call.id,
                        "tool": call.name,
                        "status": if output.is_error { "error" } else { "ok" },
                        "output": preview,
                    }),
                )],
            )
            .await?;
        messages.push(Message::tool_result(call.id.clone(), prompt, output.is_error));
        Ok(())
    }

    async fn mark_unknown_outcome(
        &self,
        step: &Step,
        messages: &mut Vec<Message>,
    ) -> Result<(), Stop> {
        let call_id = step.input["call_id"].as_str().unwrap_or_default().to_owned();
        let mut marked = step.clone();
        marked.status = StepStatus::UnknownOutcome;
        marked.output = Some(json!({"call_id": call_id, "is_error": true}));
        marked.completed_at = Some(now());
        marked.attempt = self.lease.attempt;
        self.store
            .record_step(
                &self.lease,
                marked,
                None,
                vec![NewEvent::new(
                    event::TOOL_RESULT,
                    json!({
                        "step": step.seq,
                        "call_id": call_id,
                        "tool": step.name,
                        "status": "unknown_outcome",
                        "output": unknown_outcome_message(&step.name),
                    }),
                )],
            )
            .await?;
        messages.push(Message::tool_result(call_id, unknown_outcome_message(&step.name), true));
        Ok(())
    }

    /// Replaces older turns by a summary. Returns `false` when there is nothing to compact.
    async fn compact(
        &self,
        seq: u32,
        messages: &mut Vec<Message>,
        usage: &mut RunUsage,
    ) -> Result<bool, Stop> {
        let Some((from, to)) = compactable(messages) else { return Ok(false) };
        let transcript: String = messages[from..to]
            .iter()
            .map(|m| {
                let calls: Vec<String> =
                    m.tool_calls().map(|c| format!("{}({})", c.name, c.arguments)).collect();
                let results: Vec<&str> = m
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        Content::ToolResult { content, .. } => Some(content.as_str()),
                        Content::Text { .. } | Content::ToolCall(_) => None,
                    })
                    .collect();
                format!(
                    "{:?}: {} {} {}",
                    m.role,
                    m.text(),
                    calls.join(" "),
                    clip(&results.join("\n"), 2000)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let request = ChatRequest {
            messages: vec![
                Message::system("You compress the working notes of a software agent."),
                Message::user(format!(
                    "Summarize these earlier steps of the task so that the work can continue \
                     without them: what was found, what was changed (files and how), decisions \
                     made, and what remains. Be concise and concrete.\n\n{}",
                    clip(&transcript, 200_000)
                )),
            ],
            temperature: Some(0.0),
            ..ChatRequest::default()
        };
        let interrupt = self.interrupt();
        let answer = self.llm.chat(request, &self.context(interrupt.clone())).await;
        interrupt.cancel();
        let (summary, delta) = match answer {
            Ok(response) => {
                let delta = usage_of(&response, &self.llm);
                (response.text, Some(delta))
            }
            Err(LlmError::ContextOverflow { .. }) => {
                ("(earlier steps were dropped to fit the context)".to_owned(), None)
            }
            Err(LlmError::Cancelled) => {
                return Err(self.stopped().unwrap_or(Stop::Finish(Finish::Release)));
            }
            Err(err) => return Err(self.llm_failure(err)),
        };
        if let Some(d) = &delta {
            usage.add(d);
        }
        let at = now();
        let output = json!({"summary": summary, "from": from, "to": to});
        let step = Step {
            seq,
            kind: StepKind::Compaction,
            name: "compaction".into(),
            status: StepStatus::Completed,
            side_effects: false,
            input: json!({}),
            output: Some(output.clone()),
            attempt: self.lease.attempt,
            started_at: at,
            completed_at: Some(at),
        };
        self.store
            .record_step(
                &self.lease,
                step,
                delta,
                vec![NewEvent::new(
                    event::CONTEXT_COMPACTED,
                    json!({"step": seq, "replaced_messages": to - from}),
                )],
            )
            .await?;
        apply_compaction(messages, &output);
        Ok(true)
    }

    fn llm_failure(&self, err: LlmError) -> Stop {
        let transient = matches!(
            err,
            LlmError::RateLimited { .. }
                | LlmError::Overloaded { .. }
                | LlmError::Server { .. }
                | LlmError::Connect { .. }
                | LlmError::Timeout { .. }
                | LlmError::Unavailable { .. }
                | LlmError::Protocol { .. }
        );
        let error_type = match &err {
            LlmError::NotConfigured { .. } => "no_llm_configured",
            LlmError::Unavailable { .. } => "llm_unavailable",
            LlmError::Timeout { .. } => "llm_timeout",
            LlmError::ContextOverflow { .. } => "context_overflow",
            LlmError::Cancelled => "cancelled",
            LlmError::RateLimited { .. }
            | LlmError::Overloaded { .. }
            | LlmError::Server { .. }
            | LlmError::Connect { .. }
            | LlmError::Auth { .. }
            | LlmError::BadRequest { .. }
            | LlmError::ContentFiltered { .. }
            | LlmError::NotFound { .. }
            | LlmError::Protocol { .. } => "llm_upstream_error",
        };
        let error = RunError::new(error_type, err.to_string());
        if transient {
            let after =
                err.retry_after().unwrap_or_else(|| self.config.retry_delay(self.run.failures));
            Stop::Finish(Finish::Retry { after, error })
        } else {
            Stop::Finish(Finish::Done {
                status: RunStatus::Failed,
                result: None,
                error: Some(error),
            })
        }
    }

    async fn succeed(&self, text: String) -> Result<Finish, Stop> {
        if let Some(conversation) = self.run.conversation_id {
            let appended = self
                .store
                .append_messages(
                    conversation,
                    Some(self.run.id),
                    vec![
                        NewMessage {
                            role: MessageRole::User,
                            content: self.run.input.task.clone(),
                        },
                        NewMessage { role: MessageRole::Assistant, content: text.clone() },
                    ],
                )
                .await;
            match appended {
                // Deleted while the run worked: the answer stays in the run's result.
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(Finish::Done {
            status: RunStatus::Succeeded,
            result: Some(json!({"text": text})),
            error: None,
        })
    }
}

/// The `tool.call` event of a call journaled as started as step `seq`.
fn tool_call_event(seq: u32, call: &ToolCall) -> NewEvent {
    NewEvent::new(
        event::TOOL_CALL,
        json!({"step": seq, "call_id": call.id, "tool": call.name, "arguments": call.arguments}),
    )
}

fn unknown_outcome_message(tool: &str) -> String {
    format!(
        "outcome unknown: the worker running this {tool} call stopped before recording its \
         result, so it may or may not have taken effect. It was not run again. Check the current \
         state before deciding whether to repeat it."
    )
}

/// The range of messages a compaction may replace: everything between the opening (system
/// prompt, history and task) and the last few turns, cut so that a tool call is never separated
/// from its results.
fn compactable(messages: &[Message]) -> Option<(usize, usize)> {
    let from = messages.iter().position(|m| m.role == Role::User)? + 1;
    let mut to = messages.len().saturating_sub(4);
    while to > from && messages.get(to).is_some_and(|m| m.role == Role::Tool) {
        to -= 1;
    }
    (to > from).then_some((from, to))
}

fn apply_compaction(messages: &mut Vec<Message>, output: &Value) {
    let from = output["from"].as_u64().and_then(|v| usize::try_from(v).ok()).unwrap_or(0);
    let to = output["to"].as_u64().and_then(|v| usize::try_from(v).ok()).unwrap_or(0);
    let summary = output["summary"].as_str().unwrap_or_default();
    if from < to && to <= messages.len() {
        messages
            .splice(from..to, [Message::user(format!("Summary of the earlier steps:\n{summary}"))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_head_and_tail_and_says_what_is_missing() {
        let text = format!("{}{}", "a".repeat(100), "b".repeat(100));
        let clipped = clip(&text, 40);
        assert!(clipped.starts_with(&"a".repeat(20)));
        assert!(clipped.ends_with(&"b".repeat(20)));
        assert!(clipped.contains("160 bytes omitted"));
        assert_eq!(clip("short", 40), "short");
        let multibyte = "é".repeat(50);
        assert!(!clip(&multibyte, 11).is_empty());
    }

    fn call(id: &str) -> ToolCall {
        ToolCall { id: id.into(), name: "read_file".into(), arguments: json!({}) }
    }

    #[test]
    fn pending_calls_are_those_without_results() {
        let mut assistant = Message::assistant("");
        assistant.content = vec![Content::ToolCall(call("a")), Content::ToolCall(call("b"))];
        let messages =
            vec![Message::user("task"), assistant, Message::tool_result("a", "done", false)];
        let pending = pending_calls(&messages);
        assert_eq!(pending.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(final_answer(&messages), None);
        let done = vec![Message::user("task"), Message::assistant("all done")];
        assert_eq!(final_answer(&done).as_deref(), Some("all done"));
        assert!(pending_calls(&done).is_empty());
    }

    #[test]
    fn compaction_never_splits_a_call_from_its_results() {
        let mut assistant = Message::assistant("");
        assistant.content = vec![Content::ToolCall(call("a"))];
        let mut messages = vec![Message::system("s"), Message::user("task")];
        for _ in 0..3 {
            messages.push(assistant.clone());
            messages.push(Message::tool_result("a", "r", false));
        }
        let (from, to) = compactable(&messages).unwrap();
        assert_eq!(from, 2);
        assert_ne!(messages[to].role, Role::Tool);
        let before = messages.len();
        apply_compaction(&mut messages, &json!({"summary": "sum", "from": from, "to": to}));
        assert_eq!(messages.len(), before - (to - from) + 1);
        assert!(messages[2].text().contains("sum"));
        assert_eq!(compactable(&[Message::system("s"), Message::user("t")]), None);
    }
}
