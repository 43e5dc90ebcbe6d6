//! Link settings as people write them (`latency_ms = 20`, `loss=0.01 burst=4`) and their
//! translation into the model's [`LinkParams`].
//!
//! One [`ParamSpec`] holds the settings given in one place: a TOML table, the command line or a
//! control `set`. Every field is optional; [`ParamSpec::apply`] changes only what is given, so
//! layers stack (`[defaults]`, then a path's `[path.both]`, then its `[path.a_to_b]`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::linkmodel::{LinkParams, LossModel};

/// The longest latency or jitter accepted: one hour.
pub const MAX_DELAY_MS: f64 = 3_600_000.0;

/// The largest queue accepted, in bytes (1 GiB).
pub const MAX_QUEUE_BYTES: u64 = 1 << 30;

/// A bad setting: which key and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct ParamError {
    /// The key (`loss`, `latency_ms`, ...).
    pub key: String,
    /// What is wrong with it.
    pub why: String,
}

impl ParamError {
    fn new(key: &str, why: impl Into<String>) -> ParamError {
        ParamError {
            key: key.to_owned(),
            why: why.into(),
        }
    }
}

/// Settings of one direction (or of both), each optional.
///
/// Loss is either `loss` alone (Bernoulli), `loss` with `burst` (the Gilbert model with that
/// average loss and mean burst length, [`LossModel::bursty`]), or the four Gilbert–Elliott
/// probabilities `ge_good_to_bad`, `ge_bad_to_good`, `ge_loss_good`, `ge_loss_bad` together.
/// Giving any loss key replaces the whole loss model.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// One-way delay in milliseconds (fractions allowed).
    pub latency_ms: Option<f64>,
    /// Extra delay, uniform in `[0, jitter_ms]`.
    pub jitter_ms: Option<f64>,
    /// Loss probability (0..=1): Bernoulli, or the average of a bursty model with `burst`.
    pub loss: Option<f64>,
    /// Mean loss burst length in packets (≥ 1), with `loss`.
    pub burst: Option<f64>,
    /// Gilbert–Elliott: probability per packet of moving from the good to the bad state.
    pub ge_good_to_bad: Option<f64>,
    /// Gilbert–Elliott: probability per packet of moving from the bad to the good state.
    pub ge_bad_to_good: Option<f64>,
    /// Gilbert–Elliott: loss probability in the good state.
    pub ge_loss_good: Option<f64>,
    /// Gilbert–Elliott: loss probability in the bad state.
    pub ge_loss_bad: Option<f64>,
    /// Bandwidth in bits per second of UDP payload (0: unlimited).
    pub rate_bps: Option<u64>,
    /// Bytes that may wait for the rate limit before tail drop.
    pub queue_bytes: Option<u64>,
    /// Let jitter reorder packets (default: FIFO).
    pub reorder: Option<bool>,
}

/// The keys a [`ParamSpec`] accepts, in documentation order.
pub const KEYS: [&str; 11] = [
    "latency_ms",
    "jitter_ms",
    "loss",
    "burst",
    "ge_good_to_bad",
    "ge_bad_to_good",
    "ge_loss_good",
    "ge_loss_bad",
    "rate_bps",
    "queue_bytes",
    "reorder",
];

impl ParamSpec {
    /// Parses `key=value` settings separated by spaces or commas (`"latency_ms=20 loss=0.01"`).
    pub fn parse_settings(text: &str) -> Result<ParamSpec, ParamError> {
        let mut spec = ParamSpec::default();
        for item in text.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ParamError::new(item, "expected key=value"))?;
            spec.set(key, value)?;
        }
        Ok(spec)
    }

    /// Sets one key from its text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        let float = || {
            value
                .parse::<f64>()
                .map_err(|_| ParamError::new(key, format!("`{value}` is not a number")))
        };
        let int = || {
            value.replace('_', "").parse::<u64>().map_err(|_| {
                ParamError::new(key, format!("`{value}` is not a non-negative integer"))
            })
        };
        match key {
            "latency_ms" => self.latency_ms = Some(float()?),
            "jitter_ms" => self.jitter_ms = Some(float()?),
            "loss" => self.loss = Some(float()?),
            "burst" => self.burst = Some(float()?),
            "ge_good_to_bad" => self.ge_good_to_bad = Some(float()?),
            "ge_bad_to_good" => self.ge_bad_to_good = Some(float()?),
            "ge_loss_good" => self.ge_loss_good = Some(float()?),
            "ge_loss_bad" => self.ge_loss_bad = Some(float()?),
            "rate_bps" => self.rate_bps = Some(int()?),
            "queue_bytes" => self.queue_bytes = Some(int()?),
            "reorder" => {
                self.reorder = Some(match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(ParamError::new(key, format!("`{value}` is not true/false"))),
                })
            }
            _ => {
                return Err(ParamError::new(
                    key,
                    format!("unknown setting (known: {})", KEYS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == ParamSpec::default()
    }

    /// Settings of `self`, overridden by those `over` gives.
    pub fn merged(&self, over: &ParamSpec) -> ParamSpec {
        let loss_given = over.loss_keys_given();
        let pick = |a: Option<f64>, b: Option<f64>| if loss_given { b } else { a };
        ParamSpec {
            latency_ms: over.latency_ms.or(self.latency_ms),
            jitter_ms: over.jitter_ms.or(self.jitter_ms),
            loss: pick(self.loss, over.loss),
            burst: pick(self.burst, over.burst),
            ge_good_to_bad: pick(self.ge_good_to_bad, over.ge_good_to_bad),
            ge_bad_to_good: pick(self.ge_bad_to_good, over.ge_bad_to_good),
            ge_loss_good: pick(self.ge_loss_good, over.ge_loss_good),
            ge_loss_bad: pick(self.ge_loss_bad, over.ge_loss_bad),
            rate_bps: over.rate_bps.or(self.rate_bps),
            queue_bytes: over.queue_bytes.or(self.queue_bytes),
            reorder: over.reorder.or(self.reorder),
        }
    }

    fn loss_keys_given(&self) -> bool {
        [
            self.loss,
            self.burst,
            self.ge_good_to_bad,
            self.ge_bad_to_good,
            self.ge_loss_good,
            self.ge_loss_bad,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// `base` with the settings given here applied, or the first bad one.
    pub fn apply(&self, base: LinkParams) -> Result<LinkParams, ParamError> {
        let mut p = base;
        if let Some(ms) = self.latency_ms {
            p.latency = delay("latency_ms", ms)?;
        }
        if let Some(ms) = self.jitter_ms {
            p.jitter = delay("jitter_ms", ms)?;
        }
        if self.loss_keys_given() {
            p.loss = self.loss_model()?;
        }
        if let Some(rate) = self.rate_bps {
            p.rate_bps = (rate > 0).then_some(rate);
        }
        if let Some(q) = self.queue_bytes {
            if q > MAX_QUEUE_BYTES {
                return Err(ParamError::new(
                    "queue_bytes",
                    format!("{q} is more than {MAX_QUEUE_BYTES}"),
                ));
            }
            p.queue_limit_bytes = q as usize;
        }
        if let Some(r) = self.reorder {
            p.reorder = r;
        }
        Ok(p)
    }

    fn loss_model(&self) -> Result<LossModel, ParamError> {
        let ge = [
            ("ge_good_to_bad", self.ge_good_to_bad),
            ("ge_bad_to_good", self.ge_bad_to_good),
            ("ge_loss_good", self.ge_loss_good),
            ("ge_loss_bad", self.ge_loss_bad),
        ];
        if let Some((key, _)) = ge.iter().find(|(_, v)| v.is_some()) {
            if self.loss.is_some() || self.burst.is_some() {
                return Err(ParamError::new(
                    key,
                    "give either loss (and burst) or the four ge_* probabilities, not both",
                ));
            }
            let mut v = [0.0; 4];
            for (slot, (key, value)) in v.iter_mut().zip(ge) {
                let value = value.ok_or_else(|| {
                    ParamError::new(key, "missing: the four ge_* probabilities go together")
                })?;
                *slot = probability(key, value)?;
            }
            return Ok(LossModel::GilbertElliott {
                p_good_to_bad: v[0],
                p_bad_to_good: v[1],
                loss_good: v[2],
                loss_bad: v[3],
            });
        }
        let loss = match self.loss {
            Some(l) => probability("loss", l)?,
            None => {
                return Err(ParamError::new(
                    "burst",
                    "needs loss (the average loss rate)",
                ));
            }
        };
        match self.burst {
            None if loss == 0.0 => Ok(LossModel::None),
            None => Ok(LossModel::Bernoulli { p: loss }),
            Some(b) => {
                if !b.is_finite() || b < 1.0 {
                    return Err(ParamError::new("burst", format!("{b} is not a length ≥ 1")));
                }
                if loss >= 1.0 {
                    return Err(ParamError::new(
                        "loss",
                        "must be below 1 with a burst length",
                    ));
                }
                if loss == 0.0 {
                    return Ok(LossModel::None);
                }
                Ok(LossModel::bursty(loss, b))
            }
        }
    }
}

fn delay(key: &str, ms: f64) -> Result<Duration, ParamError> {
    if !ms.is_finite() || !(0.0..=MAX_DELAY_MS).contains(&ms) {
        return Err(ParamError::new(
            key,
            format!("{ms} is not a delay in 0..={MAX_DELAY_MS} ms"),
        ));
    }
    Ok(Duration::from_nanos((ms * 1e6).round() as u64))
}

fn probability(key: &str, p: f64) -> Result<f64, ParamError> {
    if !p.is_finite() || !(0.0..=1.0).contains(&p) {
        return Err(ParamError::new(
            key,
            format!("{p} is not a probability in 0..=1"),
        ));
    }
    Ok(p)
}

/// `params` as JSON, in the units of the settings (`latency_ms`, `rate_bps`, ...).
pub fn params_json(params: &LinkParams) -> Value {
    let ms = |d: Duration| d.as_nanos() as f64 / 1e6;
    let loss = match params.loss {
        LossModel::None => json!({ "model": "none" }),
        LossModel::Bernoulli { p } => json!({ "model": "bernoulli", "p": p }),
        LossModel::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good,
            loss_bad,
        } => json!({
            "model": "gilbert_elliott",
            "good_to_bad": p_good_to_bad,
            "bad_to_good": p_bad_to_good,
            "loss_good": loss_good,
            "loss_bad": loss_bad,
            "average": params.loss.average(),
        }),
    };
    json!({
        "latency_ms": ms(params.latency),
        "jitter_ms": ms(params.jitter),
        "loss": loss,
        "rate_bps": params.rate_bps,
        "queue_bytes": params.queue_limit_bytes,
        "reorder": params.reorder,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_apply() {
        let spec = ParamSpec::parse_settings("latency_ms=20, jitter_ms=0.5 loss=0.01").unwrap();
        let p = spec.apply(LinkParams::default()).unwrap();
        assert_eq!(p.latency, Duration::from_millis(20));
        assert_eq!(p.jitter, Duration::from_micros(500));
        assert_eq!(p.loss, LossModel::Bernoulli { p: 0.01 });
        let p = ParamSpec::parse_settings("loss=0.05 burst=4 rate_bps=1_000_000 queue_bytes=10")
            .unwrap()
            .apply(p)
            .unwrap();
        assert_eq!(p.loss, LossModel::bursty(0.05, 4.0));
        assert_eq!(p.latency, Duration::from_millis(20), "untouched keys stay");
        assert_eq!(p.rate_bps, Some(1_000_000));
        assert_eq!(p.queue_limit_bytes, 10);
        let p = ParamSpec::parse_settings("loss=0 rate_bps=0 reorder=true")
            .unwrap()
            .apply(p)
            .unwrap();
        assert_eq!(p.loss, LossModel::None);
        assert_eq!(p.rate_bps, None);
        assert!(p.reorder);
        let ge = "ge_good_to_bad=0.01 ge_bad_to_good=0.5 ge_loss_good=0 ge_loss_bad=0.9";
        let p = ParamSpec::parse_settings(ge).unwrap().apply(p).unwrap();
        assert_eq!(
            p.loss,
            LossModel::GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.5,
                loss_good: 0.0,
                loss_bad: 0.9
            }
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let err = |s: &str| {
            ParamSpec::parse_settings(s)
                .and_then(|spec| spec.apply(LinkParams::default()))
                .unwrap_err()
        };
        assert_eq!(err("loss=1.5").key, "loss");
        assert_eq!(err("latency_ms=-1").key, "latency_ms");
        assert_eq!(err("latency_ms=abc").key, "latency_ms");
        assert_eq!(err("latency=3").key, "latency");
        assert!(err("latency=3").why.contains("latency_ms"));
        assert_eq!(err("burst=4").key, "burst");
        assert_eq!(err("loss=0.1 burst=0.5").key, "burst");
        assert_eq!(err("loss=1 burst=2").key, "loss");
        assert_eq!(err("ge_good_to_bad=0.1").key, "ge_bad_to_good");
        assert_eq!(err("loss=0.1 ge_loss_bad=1").key, "ge_loss_bad");
        assert_eq!(err("queue_bytes=99999999999").key, "queue_bytes");
        assert_eq!(err("reorder=maybe").key, "reorder");
        assert_eq!(err("novalue").key, "novalue");
        assert_eq!(err("jitter_ms=NaN").key, "jitter_ms");
    }

    #[test]
    fn later_layers_override_and_loss_is_replaced_whole() {
        let base = ParamSpec::parse_settings("latency_ms=5 loss=0.1 burst=3").unwrap();
        let over = ParamSpec::parse_settings(
            "ge_good_to_bad=0.1 ge_bad_to_good=0.1 ge_loss_good=0 ge_loss_bad=1",
        )
        .unwrap();
        let m = base.merged(&over);
        assert_eq!(m.latency_ms, Some(5.0));
        assert_eq!(m.loss, None, "the loss model is replaced, not mixed");
        assert!(m.apply(LinkParams::default()).is_ok());
        let m = base.merged(&ParamSpec::parse_settings("jitter_ms=1").unwrap());
        assert_eq!(m.burst, Some(3.0));
    }

    #[test]
    fn json_shows_the_settings_units() {
        let p = ParamSpec::parse_settings("latency_ms=2.5 loss=0.05 burst=4")
            .unwrap()
            .apply(LinkParams::default())
            .unwrap();
        let v = params_json(&p);
        assert_eq!(v["latency_ms"], 2.5);
        assert_eq!(v["loss"]["model"], "gilbert_elliott");
        assert!((v["loss"]["average"].as_f64().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(v["rate_bps"], Value::Null);
    }
}
