//! The workload a sweep measures: a loadgen preset, or an explicit size,
//! rate, connection count and mode, turned into the exact loadgen arguments
//! every point of the sweep runs with.
//!
//! Presets come from loadgen itself ([`loadgen::presets`]), so `tune` and
//! `loadgen --preset` can never disagree about what `shooter-128hz` means.
//! The arguments are always written out in full (`--mode open --rate 128
//! -c 200 -s 18..64`), so the report states the traffic even if a preset
//! changes later.

use loadgen::config::{Mode, SizeRange};
use loadgen::payload::PayloadKind;
use loadgen::presets;

/// Why a workload cannot be built from the options given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    /// `--preset` names no loadgen preset.
    #[error("unknown preset {name:?}; known: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The preset names there are.
        known: String,
    },
    /// Neither a preset nor a complete explicit workload.
    #[error("{0}")]
    Incomplete(String),
    /// A value loadgen would refuse.
    #[error("{0}")]
    Invalid(String),
}

/// Explicit workload values; each one overrides the preset's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadOverrides {
    /// Connections (players).
    pub connections: Option<usize>,
    /// Payload size range.
    pub size: Option<SizeRange>,
    /// Messages per second per connection; implies open mode.
    pub rate_hz: Option<f64>,
    /// `Some(true)` for closed loop, `Some(false)` for open loop.
    pub closed: Option<bool>,
    /// Name used for the result files when no preset names the workload.
    pub name: Option<String>,
}

/// The traffic of every point in a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Name of the result files (`results/tuning/<name>.md`).
    pub name: String,
    /// The preset it starts from, if any.
    pub preset: Option<&'static str>,
    /// What the preset models, or a description of the explicit values.
    pub about: String,
    /// Open (tick rate) or closed loop.
    pub mode: Mode,
    /// Connections.
    pub connections: usize,
    /// Payload sizes.
    pub size: SizeRange,
    /// Messages in flight per connection.
    pub in_flight: usize,
    /// Text or binary.
    pub payload: PayloadKind,
}

impl Workload {
    /// Builds the workload: the preset's values, each replaced by an explicit
    /// override. Without a preset, connections, size and a mode (closed, or
    /// a rate) are all required.
    pub fn new(
        preset: Option<&str>,
        overrides: &WorkloadOverrides,
    ) -> Result<Workload, WorkloadError> {
        let preset = preset
            .map(|name| {
                presets::find(name).ok_or_else(|| WorkloadError::UnknownPreset {
                    name: name.to_string(),
                    known: presets::PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            })
            .transpose()?;
        // The same rule as loadgen's: --rate alone selects the open loop.
        let mode = Mode::from_flags(overrides.closed, overrides.rate_hz, preset.map(|p| p.mode))
            .map_err(WorkloadError::Invalid)?
            .ok_or_else(|| {
                WorkloadError::Incomplete(
                    "give --preset NAME, or --connections, --size and --rate HZ (or --mode closed)"
                        .into(),
                )
            })?;
        if let Mode::Open { rate_hz } = mode {
            if !(rate_hz.is_finite() && rate_hz > 0.0) {
                return Err(WorkloadError::Invalid(format!(
                    "--rate {rate_hz} must be a positive number of messages per second"
                )));
            }
        }
        let connections = overrides
            .connections
            .or(preset.map(|p| p.connections))
            .ok_or_else(|| WorkloadError::Incomplete("--connections N is required".into()))?;
        if connections == 0 {
            return Err(WorkloadError::Invalid(
                "--connections must be at least 1".into(),
            ));
        }
        let size = overrides
            .size
            .or(preset.map(|p| p.size))
            .ok_or_else(|| WorkloadError::Incomplete("--size BYTES|MIN..MAX is required".into()))?;
        let payload = preset.map_or(PayloadKind::Binary, |p| p.payload);
        if size.min < payload.min_size() {
            return Err(WorkloadError::Invalid(format!(
                "--size {size}: loadgen's {} messages are at least {} B",
                payload.name(),
                payload.min_size()
            )));
        }
        let in_flight = preset.map_or(1, |p| p.in_flight);
        let explicit = overrides.connections.is_some()
            || overrides.size.is_some()
            || overrides.rate_hz.is_some()
            || overrides.closed.is_some();
        let name = match (&overrides.name, preset) {
            (Some(name), _) => name.clone(),
            (None, Some(p)) if !explicit => p.name.to_string(),
            (None, _) => default_name(mode, connections, size),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(WorkloadError::Invalid(format!(
                "workload name {name:?}: use letters, digits, '-', '_' or '.' (it names files)"
            )));
        }
        let about = match preset {
            Some(p) if !explicit => p.about.to_string(),
            Some(p) => format!(
                "{} (preset {} with explicit overrides)",
                describe(mode, connections, size),
                p.name
            ),
            None => describe(mode, connections, size),
        };
        Ok(Workload {
            name,
            preset: preset.map(|p| p.name),
            about,
            mode,
            connections,
            size,
            in_flight,
            payload,
        })
    }

    /// The loadgen options (after the URL) that produce this traffic, all
    /// spelled out; duration, warmup and output options are added per run.
    pub fn loadgen_args(&self) -> Vec<String> {
        let mut args = match self.mode {
            Mode::Closed => vec!["--mode".to_string(), "closed".to_string()],
            Mode::Open { rate_hz } => vec![
                "--mode".to_string(),
                "open".to_string(),
                "--rate".to_string(),
                rate_hz.to_string(),
            ],
        };
        args.extend([
            "-c".to_string(),
            self.connections.to_string(),
            "-s".to_string(),
            format!("{}..{}", self.size.min, self.size.max),
            "--in-flight".to_string(),
            self.in_flight.to_string(),
            format!("--{}", self.payload.name()),
        ]);
        args
    }

    /// The traffic in words, e.g. `200 connections x 128 Hz, 18..64 B messages, open loop`.
    pub fn traffic(&self) -> String {
        describe(self.mode, self.connections, self.size)
    }

    /// The largest message this workload sends, in bytes.
    pub fn largest_message(&self) -> usize {
        self.size.max
    }

    /// Messages per second the clients offer in open mode (`None` when closed).
    pub fn offered_rate(&self) -> Option<f64> {
        match self.mode {
            Mode::Open { rate_hz } => Some(rate_hz * self.connections as f64),
            Mode::Closed => None,
        }
    }
}

fn describe(mode: Mode, connections: usize, size: SizeRange) -> String {
    match mode {
        Mode::Open { rate_hz } => {
            format!("{connections} connections x {rate_hz} Hz, {size} messages, open loop")
        }
        Mode::Closed => format!("{connections} connections, {size} messages, closed loop"),
    }
}

fn default_name(mode: Mode, connections: usize, size: SizeRange) -> String {
    let size = if size.is_fixed() {
        format!("{}b", size.min)
    } else {
        format!("{}-{}b", size.min, size.max)
    };
    match mode {
        Mode::Open { rate_hz } => format!("open-{connections}x{rate_hz}hz-{size}"),
        Mode::Closed => format!("closed-{connections}x{size}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_spells_out_its_traffic() {
        let w = Workload::new(Some("shooter-128hz"), &WorkloadOverrides::default()).unwrap();
        assert_eq!(w.name, "shooter-128hz");
        assert_eq!(w.connections, 200);
        assert_eq!(w.largest_message(), 64);
        assert_eq!(w.offered_rate(), Some(128.0 * 200.0));
        assert_eq!(
            w.loadgen_args().join(" "),
            "--mode open --rate 128 -c 200 -s 18..64 --in-flight 1 --binary"
        );
    }

    #[test]
    fn overrides_beat_the_preset_and_rename_the_workload() {
        let overrides = WorkloadOverrides {
            connections: Some(50),
            ..Default::default()
        };
        let w = Workload::new(Some("moba-30hz"), &overrides).unwrap();
        assert_eq!(w.connections, 50);
        assert_eq!(w.name, "open-50x30hz-64-512b");
        assert!(w.about.contains("preset moba-30hz"));
    }

    #[test]
    fn explicit_workloads_need_every_value() {
        let closed = WorkloadOverrides {
            connections: Some(10),
            size: Some(SizeRange {
                min: 1024,
                max: 1024,
            }),
            closed: Some(true),
            ..Default::default()
        };
        let w = Workload::new(None, &closed).unwrap();
        assert_eq!(w.mode, Mode::Closed);
        assert_eq!(w.name, "closed-10x1024b");
        assert!(matches!(
            Workload::new(None, &WorkloadOverrides::default()),
            Err(WorkloadError::Incomplete(_))
        ));
        let no_size = WorkloadOverrides {
            size: None,
            ..closed.clone()
        };
        assert!(matches!(
            Workload::new(None, &no_size),
            Err(WorkloadError::Incomplete(_))
        ));
        assert!(matches!(
            Workload::new(Some("no-such"), &WorkloadOverrides::default()),
            Err(WorkloadError::UnknownPreset { .. })
        ));
        let bad_rate = WorkloadOverrides {
            rate_hz: Some(0.0),
            closed: None,
            ..closed
        };
        assert!(Workload::new(None, &bad_rate).is_err());
    }
}
