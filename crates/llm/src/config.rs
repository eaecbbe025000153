//! The `[llm]` settings: providers, per-model facts, the policy's numbers, the cache; and the
//! routes of agent types.
//!
//! The server deserialises these from its configuration file (unknown keys are errors) and then
//! calls [`LlmSettings::apply_env`] with the environment it was given: API keys are read from the
//! variables each provider names, and when no provider is configured the well-known variables
//! (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, `AGENTD_LLM_BASE_URL`) configure
//! them. This module never reads the process environment itself. Keys are [`SecretString`]s and
//! serialise as `[redacted]`.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

use crate::usage::Price;

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI Chat Completions; also Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl ProviderKind {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    /// The base URL used when a provider gives none.
    #[must_use]
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Self::Openai => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com/v1",
            Self::Gemini => "https://generativelanguage.googleapis.com/v1beta",
        }
    }
}

/// Every LLM setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// Providers by their (free) name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Facts per model, keyed `provider-name/model`.
    pub models: BTreeMap<String, ModelSettings>,
    /// The route of agent types that name no model: `provider-name/model`. When no provider is
    /// configured and the environment supplies one, the first of them.
    pub default_model: Option<String>,
    /// The OpenAI-compatible server given by `AGENTD_LLM_BASE_URL`, used only when no provider
    /// is configured.
    pub local: LocalServerSettings,
    /// The overall deadline of one call, across retries and fallbacks (for a stream: until its
    /// first delta).
    pub deadline_seconds: u64,
    /// The largest response body or stream event accepted from a provider.
    pub max_response_bytes: usize,
    /// Retries.
    pub retry: RetrySettings,
    /// Circuit breakers.
    pub breaker: BreakerSettings,
    /// The response cache.
    pub cache: CacheSettings,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            default_model: None,
            local: LocalServerSettings::default(),
            deadline_seconds: 300,
            max_response_bytes: 16 * 1024 * 1024,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            cache: CacheSettings::default(),
        }
    }
}

/// One provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Its wire protocol.
    pub kind: ProviderKind,
    /// Its base URL; each kind has a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding its API key; none for local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The key, read from `api_key_env` at load. Never read from the file, never printed.
    #[serde(skip_deserializing, serialize_with = "redact")]
    pub api_key: Option<SecretString>,
    /// The total time of one non-streamed attempt.
    #[serde(default = "defaults::timeout")]
    pub timeout_seconds: u64,
    /// The time to establish a connection.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// The time to the response headers, and for a stream to its first delta.
    #[serde(default = "defaults::first_byte_timeout")]
    pub first_byte_timeout_seconds: u64,
    /// The longest silence between two chunks of a stream.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// The total time of one streamed attempt.
    #[serde(default = "defaults::stream_timeout")]
    pub stream_timeout_seconds: u64,
}

mod defaults {
    pub(super) const fn timeout() -> u64 {
        120
    }
    pub(super) const fn connect_timeout() -> u64 {
        10
    }
    pub(super) const fn first_byte_timeout() -> u64 {
        60
    }
    pub(super) const fn idle_timeout() -> u64 {
        60
    }
    pub(super) const fn stream_timeout() -> u64 {
        600
    }
}

impl ProviderSettings {
    /// A provider of `kind` with default URL and timeouts and no key.
    #[must_use]
    pub const fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key_env: None,
            api_key: None,
            timeout_seconds: defaults::timeout(),
            connect_timeout_seconds: defaults::connect_timeout(),
            first_byte_timeout_seconds: defaults::first_byte_timeout(),
            idle_timeout_seconds: defaults::idle_timeout(),
            stream_timeout_seconds: defaults::stream_timeout(),
        }
    }

    /// The base URL in effect, without a trailing slash.
    #[must_use]
    pub fn effective_base_url(&self) -> String {
        self.base_url
            .as_deref()
            .unwrap_or(self.kind.default_base_url())
            .trim_end_matches('/')
            .to_owned()
    }

    /// Whether the provider can be called: hosted kinds at their default URL need a key.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }

    /// The timeouts in effect.
    #[must_use]
    pub const fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.connect_timeout_seconds),
            first_byte: Duration::from_secs(self.first_byte_timeout_seconds),
            idle: Duration::from_secs(self.idle_timeout_seconds),
            total: Duration::from_secs(self.timeout_seconds),
            stream_total: Duration::from_secs(self.stream_timeout_seconds),
        }
    }
}

/// The clocks of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To establish the connection.
    pub connect: Duration,
    /// To the response headers; for a stream, to its first delta.
    pub first_byte: Duration,
    /// Between two chunks of a stream.
    pub idle: Duration,
    /// The whole non-streamed attempt.
    pub total: Duration,
    /// The whole streamed attempt.
    pub stream_total: Duration,
}

/// Facts about one model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Its context window in tokens; requests that cannot fit fail before they are sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Its price; without one, its usage is recorded as unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// The OpenAI-compatible server configured from `AGENTD_LLM_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalServerSettings {
    /// `AGENTD_LLM_BASE_URL`: its base URL, e.g. `http://127.0.0.1:11434/v1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `AGENTD_LLM_MODEL`: the model to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `AGENTD_LLM_API_KEY`: its key, if it needs one.
    #[serde(serialize_with = "redact", skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
}

/// How calls are retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts per candidate model, the first included.
    pub max_attempts: u32,
    /// The first backoff ceiling; it doubles for each retry (full jitter below it).
    pub base_delay_ms: u64,
    /// The ceiling of any backoff delay.
    pub max_delay_ms: u64,
    /// The longest wait a `Retry-After` may impose; a longer one moves to the next candidate.
    pub max_retry_after_seconds: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 500,
            max_delay_ms: 8_000,
            max_retry_after_seconds: 60,
        }
    }
}

/// When a model's circuit breaker opens and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// The number of recent calls the failure rate is computed over.
    pub window: u32,
    /// The fewest calls in the window before the rate may trip the breaker.
    pub min_calls: u32,
    /// The failure rate, in percent, that trips the breaker.
    pub failure_rate_percent: u32,
    /// The run of consecutive transient failures that trips the breaker.
    pub consecutive_failures: u32,
    /// How long the breaker stays open the first time.
    pub open_seconds: u64,
    /// The ceiling of the open time, which doubles on each re-trip.
    pub max_open_seconds: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 5,
            failure_rate_percent: 50,
            consecutive_failures: 3,
            open_seconds: 30,
            max_open_seconds: 300,
        }
    }
}

/// What the response cache does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// No cache.
    Off,
    /// Read and write.
    On,
    /// Answer from the cache, never store.
    ReadOnly,
    /// Store, never answer from the cache.
    WriteOnly,
}

impl CacheMode {
    pub(crate) const fn reads(self) -> bool {
        matches!(self, Self::On | Self::ReadOnly)
    }

    pub(crate) const fn writes(self) -> bool {
        matches!(self, Self::On | Self::WriteOnly)
    }
}

/// The response cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Off, on, read-only or write-only.
    pub mode: CacheMode,
    /// How long an answer stays.
    pub ttl_seconds: u64,
    /// The most bytes of answers kept; the least used go first.
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { mode: CacheMode::On, ttl_seconds: 86_400, max_bytes: 64 * 1024 * 1024 }
    }
}

/// The models an agent type uses, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentRoute {
    /// The primary model, `provider-name/model`.
    pub model: String,
    /// The fallbacks, `provider-name/model`, tried in order.
    pub fallbacks: Vec<String>,
    /// Cache this agent type's answers even when the temperature is not 0.
    pub cache: bool,
}

/// The models well-known variables configure, in the order the first one is picked.
pub const ENV_PROVIDERS: [(&str, ProviderKind, &str); 3] = [
    ("OPENAI_API_KEY", ProviderKind::Openai, "gpt-4o"),
    ("ANTHROPIC_API_KEY", ProviderKind::Anthropic, "claude-sonnet-4-5"),
    ("GEMINI_API_KEY", ProviderKind::Gemini, "gemini-2.5-flash"),
];

/// The name of the provider `AGENTD_LLM_BASE_URL` configures.
pub const LOCAL_PROVIDER: &str = "local";

/// A configuration problem, with the dotted key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct LlmConfigError {
    /// The dotted key, e.g. `llm.providers.openai.base_url` or `agents.code.fallbacks`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn config_error(key: impl Into<String>, message: impl Into<String>) -> LlmConfigError {
    LlmConfigError { key: key.into(), message: message.into() }
}

/// `provider-name/model` split at its first slash (model names may contain slashes).
#[must_use]
pub fn split_model(route: &str) -> Option<(&str, &str)> {
    route.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty())
}

impl LlmSettings {
    /// Reads API keys from `env`, and when no provider is configured, configures them from the
    /// well-known variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, then the
    /// `AGENTD_LLM_*` local server, already in [`Self::local`]); the first becomes the default
    /// model.
    pub fn apply_env(&mut self, env: &BTreeMap<String, String>) {
        let lookup = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        if self.providers.is_empty() {
            let mut first = None;
            for (var, kind, model) in ENV_PROVIDERS {
                if lookup(var).is_some() {
                    let name = kind.as_str();
                    let mut provider = ProviderSettings::new(kind);
                    provider.api_key_env = Some(var.to_owned());
                    self.providers.insert(name.to_owned(), provider);
                    first.get_or_insert_with(|| format!("{name}/{model}"));
                }
            }
            if let Some(base_url) = &self.local.base_url {
                let mut provider = ProviderSettings::new(ProviderKind::Openai);
                provider.base_url = Some(base_url.clone());
                provider.api_key = self.local.api_key.clone();
                self.providers.insert(LOCAL_PROVIDER.to_owned(), provider);
                if let Some(model) = &self.local.model {
                    first.get_or_insert_with(|| format!("{LOCAL_PROVIDER}/{model}"));
                }
            }
            if self.default_model.is_none() {
                self.default_model = first;
            }
        }
        for provider in self.providers.values_mut() {
            if let Some(var) = &provider.api_key_env {
                provider.api_key = lookup(var).map(SecretString::from);
            }
        }
    }

    /// Checks the settings and the agent routes against each other.
    ///
    /// # Errors
    /// The first problem, naming its key.
    pub fn validate<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'a str, &'a AgentRoute)>,
    ) -> Result<(), LlmConfigError> {
        for (name, p) in &self.providers {
            let key = |field: &str| format!("llm.providers.{name}.{field}");
            if name.is_empty() || name.contains('/') {
                return Err(config_error(
                    format!("llm.providers.{name}"),
                    "a provider name must be non-empty and contain no '/'",
                ));
            }
            if let Some(url) = &p.base_url {
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    Ok(_) | Err(_) => {
                        return Err(config_error(
                            key("base_url"),
                            format!("{url:?} is not an http(s) URL"),
                        ));
                    }
                }
            }
            for (field, v) in [
                ("timeout_seconds", p.timeout_seconds),
                ("connect_timeout_seconds", p.connect_timeout_seconds),
                ("first_byte_timeout_seconds", p.first_byte_timeout_seconds),
                ("idle_timeout_seconds", p.idle_timeout_seconds),
                ("stream_timeout_seconds", p.stream_timeout_seconds),
            ] {
                if v == 0 {
                    return Err(config_error(
                        key(field),
                        "must be greater than 0 (timeouts are always finite)",
                    ));
                }
            }
        }
        for (name, m) in &self.models {
            let key = format!("llm.models.\"{name}\"");
            self.check_model_ref(&key, name)?;
            if m.context_window == Some(0) {
                return Err(config_error(
                    format!("{key}.context_window"),
                    "must be greater than 0",
                ));
            }
            if let Some(field) = m.price.as_ref().and_then(Price::negative_field) {
                return Err(config_error(
                    format!("{key}.price.{field}"),
                    "a price must not be negative",
                ));
            }
        }
        if let Some(model) = &self.default_model {
            self.check_model_ref("llm.default_model", model)?;
        }
        if self.local.base_url.is_some()
            && self.local.model.is_none()
            && self.providers.contains_key(LOCAL_PROVIDER)
            && self.default_model.is_none()
        {
            return Err(config_error(
                "llm.local.model",
                "AGENTD_LLM_MODEL is required with AGENTD_LLM_BASE_URL",
            ));
        }
        for (agent, route) in routes {
            self.check_model_ref(&format!("agents.{agent}.model"), &route.model)?;
            for (i, fallback) in route.fallbacks.iter().enumerate() {
                self.check_model_ref(&format!("agents.{agent}.fallbacks[{i}]"), fallback)?;
            }
        }
        for (key, v) in [
            ("llm.deadline_seconds", self.deadline_seconds),
            ("llm.max_response_bytes", self.max_response_bytes as u64),
            ("llm.retry.max_attempts", u64::from(self.retry.max_attempts)),
            ("llm.breaker.window", u64::from(self.breaker.window)),
            ("llm.breaker.consecutive_failures", u64::from(self.breaker.consecutive_failures)),
            ("llm.breaker.open_seconds", self.breaker.open_seconds),
            ("llm.cache.ttl_seconds", self.cache.ttl_seconds),
        ] {
            if v == 0 {
                return Err(config_error(key, "must be greater than 0"));
            }
        }
        if self.retry.max_attempts > 10 {
            return Err(config_error("llm.retry.max_attempts", "must be at most 10"));
        }
        if !(1..=100).contains(&self.breaker.failure_rate_percent) {
            return Err(config_error(
                "llm.breaker.failure_rate_percent",
                "must be between 1 and 100",
            ));
        }
        if self.breaker.max_open_seconds < self.breaker.open_seconds {
            return Err(config_error(
                "llm.breaker.max_open_seconds",
                "must be at least open_seconds",
            ));
        }
        Ok(())
    }

    fn check_model_ref(&self, key: &str, model: &str) -> Result<(), LlmConfigError> {
        let Some((provider, _)) = split_model(model) else {
            return Err(config_error(
                key,
                format!("{model:?} is not of the form provider-name/model"),
            ));
        };
        if !self.providers.contains_key(provider) {
            let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            return Err(config_error(
                key,
                format!(
                    "{model:?} names the unknown provider {provider:?} (configured: {known:?})"
                ),
            ));
        }
        Ok(())
    }
}

fn redact<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn without_providers_the_environment_configures_them_and_the_first_is_the_default() {
        let mut s = LlmSettings::default();
        s.apply_env(&env(&[("GEMINI_API_KEY", "g"), ("ANTHROPIC_API_KEY", "a")]));
        assert_eq!(s.providers.keys().collect::<Vec<_>>(), ["anthropic", "gemini"]);
        assert_eq!(s.default_model.as_deref(), Some("anthropic/claude-sonnet-4-5"));
        let key = s.providers["gemini"].api_key.as_ref().map(|k| k.expose_secret().to_owned());
        assert_eq!(key.as_deref(), Some("g"));
        s.validate([]).unwrap();
    }

    #[test]
    fn a_local_server_comes_from_agentd_llm_variables() {
        let mut s = LlmSettings::default();
        s.local.base_url = Some("http://127.0.0.1:11434/v1".into());
        s.local.model = Some("qwen3:8b".into());
        s.apply_env(&env(&[]));
        assert_eq!(s.default_model.as_deref(), Some("local/qwen3:8b"));
        assert_eq!(s.providers["local"].effective_base_url(), "http://127.0.0.1:11434/v1");
        assert!(s.providers["local"].is_enabled());
    }

    #[test]
    fn configured_providers_take_keys_from_their_variable_only() {
        let mut s = LlmSettings::default();
        let mut p = ProviderSettings::new(ProviderKind::Anthropic);
        p.api_key_env = Some("MY_KEY".into());
        s.providers.insert("claude".into(), p);
        s.apply_env(&env(&[("OPENAI_API_KEY", "o")]));
        assert_eq!(s.providers.len(), 1);
        assert!(!s.providers["claude"].is_enabled(), "MY_KEY is unset");
        s.apply_env(&env(&[("MY_KEY", "k")]));
        assert!(s.providers["claude"].is_enabled());
    }

    #[test]
    fn a_route_naming_an_unknown_provider_names_its_key() {
        let mut s = LlmSettings::default();
        s.providers.insert("openai".into(), ProviderSettings::new(ProviderKind::Openai));
        let route = AgentRoute {
            model: "openai/gpt-4o".into(),
            fallbacks: vec!["nope/x".into()],
            cache: false,
        };
        let err = s.validate([("code", &route)]).unwrap_err();
        assert_eq!(err.key, "agents.code.fallbacks[0]");
        let route = AgentRoute { model: "gpt-4o".into(), ..AgentRoute::default() };
        assert_eq!(s.validate([("code", &route)]).unwrap_err().key, "agents.code.model");
    }

    #[test]
    fn a_negative_price_and_a_zero_timeout_name_their_keys() {
        let mut s = LlmSettings::default();
        s.providers.insert("openai".into(), ProviderSettings::new(ProviderKind::Openai));
        let price = Price {
            input: "1".parse().unwrap(),
            output: "-2".parse().unwrap(),
            cached_input: None,
            cache_write: None,
        };
        s.models.insert(
            "openai/gpt-4o".into(),
            ModelSettings { context_window: None, price: Some(price) },
        );
        assert_eq!(s.validate([]).unwrap_err().key, "llm.models.\"openai/gpt-4o\".price.output");
        s.models.clear();
        s.providers.get_mut("openai").unwrap().idle_timeout_seconds = 0;
        assert_eq!(s.validate([]).unwrap_err().key, "llm.providers.openai.idle_timeout_seconds");
    }

    #[test]
    fn keys_are_redacted_when_printed() {
        let mut s = LlmSettings::default();
        s.apply_env(&env(&[("OPENAI_API_KEY", "sk-live-123")]));
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("sk-live-123"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
}
