//! Token usage normalised across providers, and its cost.
//!
//! Every adapter maps its provider's usage fields to OpenAI semantics, so that the rest of agentd
//! never asks which provider answered: `input_tokens` counts every prompt token once, cached ones
//! included; `output_tokens` counts every generated token, reasoning included. Cost is computed
//! with decimals from a price table per 1M tokens; a model without a price is *unpriced*, never
//! free.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Tokens of one call, with OpenAI semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Every prompt token, including cached reads and cache writes.
    pub input_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (a subset of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Every generated token, including reasoning.
    pub output_tokens: u64,
    /// Reasoning ("thinking") tokens (a subset of `output_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Prompt tokens billed at the plain input price.
    #[must_use]
    pub const fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_tokens)
    }
}

/// A model's price in USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: Decimal,
    /// Generated tokens, reasoning included.
    pub output: Decimal,
    /// Prompt tokens read from the provider's cache; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<Decimal>,
    /// Prompt tokens written to the provider's cache; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Decimal>,
}

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

impl Price {
    /// The cost in USD of `usage` at this price:
    /// Σ tokens × price / 1,000,000 over uncached input, cache reads, cache writes and output.
    #[must_use]
    pub fn cost(&self, usage: &Usage) -> Decimal {
        let tokens = |n: u64| Decimal::from(n);
        let sum = tokens(usage.uncached_input_tokens()) * self.input
            + tokens(usage.cached_input_tokens) * self.cached_input.unwrap_or(self.input)
            + tokens(usage.cache_write_tokens) * self.cache_write.unwrap_or(self.input)
            + tokens(usage.output_tokens) * self.output;
        sum / PER_MILLION
    }

    /// The first price that is negative, by name, for validation.
    #[must_use]
    pub fn negative_field(&self) -> Option<&'static str> {
        [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
        ]
        .into_iter()
        .find_map(|(name, v)| v.filter(Decimal::is_sign_negative).map(|_| name))
    }
}

/// A cost in whole nano-USD (10⁻⁹ USD), rounded half away from zero: how the ledger stores it.
#[must_use]
pub fn to_nano_usd(cost: Decimal) -> Option<i64> {
    let nanos = (cost * Decimal::from(1_000_000_000u64))
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn cost_sums_four_columns_per_million_tokens() {
        let price = Price {
            input: d("2.5"),
            output: d("10"),
            cached_input: Some(d("1.25")),
            cache_write: Some(d("3.125")),
        };
        let usage = Usage {
            input_tokens: 10_000,
            cached_input_tokens: 4_000,
            cache_write_tokens: 1_000,
            output_tokens: 500,
            reasoning_tokens: 200,
        };
        // 5000 × 2.5 + 4000 × 1.25 + 1000 × 3.125 + 500 × 10 = 12500 + 5000 + 3125 + 5000
        assert_eq!(price.cost(&usage), d("0.025625"));
        assert_eq!(to_nano_usd(price.cost(&usage)), Some(25_625_000));
    }

    #[test]
    fn missing_cache_prices_fall_back_to_the_input_price() {
        let price = Price { input: d("3"), output: d("15"), cached_input: None, cache_write: None };
        let usage = Usage { input_tokens: 2_000, cached_input_tokens: 1_000, ..Usage::default() };
        assert_eq!(price.cost(&usage), d("0.006"));
    }

    #[test]
    fn fractions_of_a_nano_dollar_round_half_away_from_zero() {
        let price =
            Price { input: d("0.0375"), output: d("0"), cached_input: None, cache_write: None };
        let one = Usage { input_tokens: 1, ..Usage::default() };
        assert_eq!(price.cost(&one), d("0.0000000375"));
        assert_eq!(to_nano_usd(price.cost(&one)), Some(38));
    }

    #[test]
    fn a_negative_price_is_named() {
        let price = Price { input: d("1"), output: d("-1"), cached_input: None, cache_write: None };
        assert_eq!(price.negative_field(), Some("output"));
    }
}
