//! The recommendation: from the measured medians, the cheapest setting that
//! is as good as the best one within the noise, where the p99 curve has its
//! knee, and what the choice saves in memory.
//!
//! The rule, applied to the settings with no errors:
//!
//! 1. **Tolerances**, one per metric (p99, msg/s, CPU per message, RSS
//!    per connection): the
//!    median, over all settings with at least two repeats, of that metric's
//!    spread between repeats, `(max - min) / median`. Two settings that
//!    differ by less than their own repeats do are not told apart. A
//!    tolerance is never below [`TOLERANCE_FLOOR`] (5%), and is
//!    [`TOLERANCE_WITHOUT_REPEATS`] (10%) when no setting was repeated.
//! 2. **Keeps up**: msg/s at least `(1 - t_rate)` x the best msg/s (an
//!    open-loop workload offers a fixed rate; a setting below it fell behind).
//! 3. **Tail**: p99 at most `(1 + t_p99)` x the best p99 of those.
//! 4. **Cost**: server CPU per message at most `(1 + t_cpu)` x the lowest
//!    CPU per message of those.
//! 5. **Memory**: measured server RSS per connection under load at most
//!    `(1 + t_mem)` x the least of those. This is what the setting really
//!    costs: the connections' own state (epoll keeps a read and a write
//!    buffer per connection) plus the part of the receive ring the load
//!    touched (the ring is FIFO, so a busy ring touches all of it).
//! 6. Of what is left, the one with the **least receive-ring memory**
//!    (buffer size x count per worker; epoll has no ring), then kernel
//!    default socket buffers before explicit ones, smaller before larger,
//!    then the lower p99.
//!
//! The **knee** is read off the chosen setting's line (io_uring, its ring
//! count and socket buffers) along the buffer size: the smallest size whose
//! p99 is within `t_p99` of that line's best. Below it the curve rises; the
//! report names both points.

use std::fmt;

use ringecho::IoBackend;

use crate::plan::{human_bytes, Series, Setting};
use crate::summary::{median, Summary};

/// The smallest tolerance the rule uses, however quiet the repeats were.
pub const TOLERANCE_FLOOR: f64 = 0.05;
/// The tolerance when no setting was measured more than once.
pub const TOLERANCE_WITHOUT_REPEATS: f64 = 0.10;

/// How close to the best counts as "as good" for one metric, and where
/// that comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The fraction, e.g. 0.12 for 12%.
    pub fraction: f64,
    /// How it was derived.
    pub basis: ToleranceBasis,
}

/// Where a [`Tolerance`] comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToleranceBasis {
    /// The median spread between repeats over `settings` settings.
    RepeatSpread {
        /// Settings with at least two repeats.
        settings: usize,
    },
    /// The measured spread (`measured`) was below the floor.
    Floor {
        /// The median spread that was measured.
        measured: f64,
        /// Settings with at least two repeats.
        settings: usize,
    },
    /// No setting had two repeats.
    NoRepeats,
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = self.fraction * 100.0;
        match self.basis {
            ToleranceBasis::RepeatSpread { settings } => write!(
                f,
                "{percent:.0}% (the median spread between repeats of one setting, \
                 (max - min) / median, over {settings} settings)"
            ),
            ToleranceBasis::Floor { measured, settings } => write!(
                f,
                "{percent:.0}% (the rule's floor; repeats spread only {:.1}%, median over \
                 {settings} settings)",
                measured * 100.0
            ),
            ToleranceBasis::NoRepeats => write!(
                f,
                "{percent:.0}% (the rule's fixed value without repeats; --repeats 3 derives \
                 it from the measured spread)"
            ),
        }
    }
}

/// The tolerance the measured repeats justify for the metric whose spread
/// `spread` gives (rule step 1).
pub fn tolerance(summaries: &[Summary], spread: fn(&Summary) -> Option<f64>) -> Tolerance {
    let spreads: Vec<f64> = summaries.iter().filter_map(spread).collect();
    if spreads.is_empty() {
        return Tolerance {
            fraction: TOLERANCE_WITHOUT_REPEATS,
            basis: ToleranceBasis::NoRepeats,
        };
    }
    let measured = median(spreads.iter().copied());
    let settings = spreads.len();
    if measured < TOLERANCE_FLOOR {
        Tolerance {
            fraction: TOLERANCE_FLOOR,
            basis: ToleranceBasis::Floor { measured, settings },
        }
    } else {
        Tolerance {
            fraction: measured,
            basis: ToleranceBasis::RepeatSpread { settings },
        }
    }
}

/// Where a line's p99 stops improving with a larger buffer size.
#[derive(Debug, Clone, PartialEq)]
pub struct Knee {
    /// The line.
    pub series: Series,
    /// The line's best median p99, us.
    pub best_p99_us: f64,
    /// The smallest size within tolerance of the best, and its p99.
    pub at: (usize, f64),
    /// The next smaller size swept and its p99 (`None`: the knee is the
    /// smallest size swept, the line is flat down to there).
    pub below: Option<(usize, f64)>,
    /// The smallest size above the knee that is again outside the
    /// tolerance, and its p99 (`None`: the line stays flat to the end).
    pub rises_again: Option<(usize, f64)>,
}

/// Why no recommendation can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRecommendation {
    /// Nothing was measured.
    #[error("no setting was measured")]
    Empty,
    /// Every setting had bad echoes or failed connections.
    #[error("every setting had errors (bad echoes, failed or lost connections); see the table")]
    AllFailed,
}

/// The recommended setting and the measured facts behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The p99 tolerance of the rule.
    pub tolerance: Tolerance,
    /// The msg/s tolerance.
    pub rate_tolerance: Tolerance,
    /// The CPU-per-message tolerance.
    pub cpu_tolerance: Tolerance,
    /// The RSS-per-connection tolerance.
    pub memory_tolerance: Tolerance,
    /// The setting to use.
    pub chosen: Summary,
    /// The setting with the lowest p99 among those that keep up.
    pub best_p99: Summary,
    /// The setting with the largest receive ring that was measured.
    pub largest_ring: Summary,
    /// How many settings passed rules 2-4, out of how many clean ones.
    pub qualified: (usize, usize),
    /// Settings left out because of errors.
    pub failed: Vec<Setting>,
    /// The knee of the chosen line (or of the best io_uring line when
    /// epoll is chosen); `None` when there is no io_uring line with two sizes.
    pub knee: Option<Knee>,
}

/// Applies the rule in the module docs.
pub fn recommend(summaries: &[Summary]) -> Result<Recommendation, NoRecommendation> {
    if summaries.is_empty() {
        return Err(NoRecommendation::Empty);
    }
    let clean: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.errors == 0 && s.p99_us.is_finite() && s.msgs_per_sec > 0.0)
        .collect();
    if clean.is_empty() {
        return Err(NoRecommendation::AllFailed);
    }
    let failed = summaries
        .iter()
        .filter(|s| !clean.iter().any(|c| c.setting == s.setting))
        .map(|s| s.setting)
        .collect();
    let rate_tolerance = tolerance(summaries, Summary::rate_spread);
    let cpu_tolerance = tolerance(summaries, Summary::cpu_spread);
    let memory_tolerance = tolerance(summaries, Summary::rss_spread);
    let tolerance = tolerance(summaries, Summary::p99_spread);
    let t = tolerance.fraction;
    let best_rate = clean.iter().map(|s| s.msgs_per_sec).fold(0.0, f64::max);
    let keeps_up: Vec<&Summary> = clean
        .iter()
        .copied()
        .filter(|s| s.msgs_per_sec >= best_rate * (1.0 - rate_tolerance.fraction.min(1.0)))
        .collect();
    let best_p99 = *keeps_up
        .iter()
        .min_by(|a, b| a.p99_us.total_cmp(&b.p99_us))
        .expect("the best msg/s setting keeps up");
    let tail_ok: Vec<&Summary> = keeps_up
        .iter()
        .copied()
        .filter(|s| s.p99_us <= best_p99.p99_us * (1.0 + t))
        .collect();
    let best_cpu = tail_ok
        .iter()
        .map(|s| s.cpu_us_per_msg)
        .filter(|c| c.is_finite())
        .fold(f64::INFINITY, f64::min);
    let cheap: Vec<&Summary> = tail_ok
        .iter()
        .copied()
        .filter(|s| {
            !best_cpu.is_finite() || s.cpu_us_per_msg <= best_cpu * (1.0 + cpu_tolerance.fraction)
        })
        .collect();
    let least_memory = cheap
        .iter()
        .map(|s| s.rss_per_connection_bytes)
        .filter(|m| m.is_finite())
        .fold(f64::INFINITY, f64::min);
    let qualified: Vec<&Summary> = cheap
        .iter()
        .copied()
        .filter(|s| {
            !least_memory.is_finite()
                || s.rss_per_connection_bytes <= least_memory * (1.0 + memory_tolerance.fraction)
        })
        .collect();
    let chosen = *qualified
        .iter()
        .min_by(|a, b| {
            a.ring_bytes
                .cmp(&b.ring_bytes)
                .then(socket_rank(a.setting).cmp(&socket_rank(b.setting)))
                .then(a.p99_us.total_cmp(&b.p99_us))
        })
        .expect("the least-memory setting of the cheap set qualifies");
    let largest_ring = *clean
        .iter()
        .max_by_key(|s| (s.ring_bytes, s.setting.buffer_size))
        .expect("clean is not empty");
    let knee_line = if chosen.setting.backend.uses_receive_ring() {
        Some(chosen.setting.series())
    } else {
        clean
            .iter()
            .filter(|s| s.setting.backend.uses_receive_ring())
            .min_by(|a, b| a.p99_us.total_cmp(&b.p99_us))
            .map(|s| s.setting.series())
    };
    let knee = knee_line.and_then(|series| knee(&clean, series, t));
    Ok(Recommendation {
        tolerance,
        rate_tolerance,
        cpu_tolerance,
        memory_tolerance,
        chosen: chosen.clone(),
        best_p99: best_p99.clone(),
        largest_ring: largest_ring.clone(),
        qualified: (qualified.len(), clean.len()),
        failed,
        knee,
    })
}

/// Kernel default first, then smaller explicit socket buffers.
fn socket_rank(setting: Setting) -> (bool, usize) {
    match setting.socket_buffer {
        None => (false, 0),
        Some(bytes) => (true, bytes),
    }
}

/// The knee of `series` along the buffer size (see the module docs).
fn knee(clean: &[&Summary], series: Series, t: f64) -> Option<Knee> {
    let mut line: Vec<&Summary> = clean
        .iter()
        .copied()
        .filter(|s| s.setting.series() == series)
        .collect();
    line.sort_by_key(|s| s.setting.buffer_size);
    if line.len() < 2 {
        return None;
    }
    let best = line.iter().map(|s| s.p99_us).fold(f64::INFINITY, f64::min);
    let within = |s: &Summary| s.p99_us <= best * (1.0 + t);
    let index = line.iter().position(|s| within(s))?;
    let point = |s: &Summary| (s.setting.buffer_size, s.p99_us);
    Some(Knee {
        series,
        best_p99_us: best,
        at: point(line[index]),
        below: index.checked_sub(1).map(|i| point(line[i])),
        rises_again: line[index..].iter().find(|s| !within(s)).map(|s| point(s)),
    })
}

impl Recommendation {
    /// The exact command line to run the engine with.
    pub fn flags(&self) -> String {
        self.chosen.setting.ringecho_flags()
    }

    /// The reasons, one sentence per line, each naming measured values.
    /// `offered_rate` is the workload's open-loop msg/s, if it has one.
    pub fn reasons(&self, largest_message: usize, offered_rate: Option<f64>) -> Vec<String> {
        let chosen = &self.chosen;
        let best = &self.best_p99;
        let t = self.tolerance.fraction;
        let mut reasons = vec![format!(
            "Tolerances: p99 {}; msg/s {}; CPU per message {}; RSS per connection {}.",
            self.tolerance, self.rate_tolerance, self.cpu_tolerance, self.memory_tolerance
        )];
        if let Some(offered) = offered_rate {
            let best_rate = self.best_p99.msgs_per_sec.max(chosen.msgs_per_sec);
            if best_rate < offered * (1.0 - self.rate_tolerance.fraction.max(TOLERANCE_FLOOR)) {
                reasons.push(format!(
                    "Saturated: the clients offered {offered:.0} msg/s but no setting echoed more \
                     than {best_rate:.0}; the latencies are queueing on a server core that cannot \
                     keep up, so compare settings by msg/s and CPU per message first."
                ));
            }
        }
        reasons.push(format!(
            "Best p99: {} ({}). {} of {} error-free settings qualify: msg/s within {:.0}% of the \
             best, p99 within {:.0}% of the best (<= {}), CPU per message within {:.0}% of the \
             lowest among those, server RSS per connection within {:.0}% of the least among \
             those; the rule takes the one with the smallest receive ring.",
            us(best.p99_us),
            best.setting.label(),
            self.qualified.0,
            self.qualified.1,
            self.rate_tolerance.fraction.min(1.0) * 100.0,
            t * 100.0,
            us(best.p99_us * (1.0 + t)),
            self.cpu_tolerance.fraction * 100.0,
            self.memory_tolerance.fraction * 100.0,
        ));
        reasons.push(format!(
            "Chosen: {}: p99 {} (p50 {}, p99.9 {}), {:.0} msg/s, {:.2} us CPU per message.",
            chosen.setting.label(),
            us(chosen.p99_us),
            us(chosen.p50_us),
            us(chosen.p99_9_us),
            chosen.msgs_per_sec,
            chosen.cpu_us_per_msg,
        ));
        if let Some(knee) = &self.knee {
            reasons.push(knee_sentence(knee, t));
        }
        reasons.push(self.memory_sentence());
        if chosen.setting.backend == IoBackend::Epoll {
            reasons.push(
                "epoll has no receive ring: --receive-buffer-size/--receive-buffers do not \
                 apply to it. It measured as good as the best io_uring setting within the \
                 tolerances, memory per connection included, so the rule takes the choice that \
                 holds no ring at all."
                    .to_string(),
            );
        } else if chosen.setting.buffer_size < largest_message {
            reasons.push(format!(
                "The largest message ({largest_message} B) spans up to {} buffers of {}; \
                 that costs nothing beyond the tolerance here{}.",
                largest_message.div_ceil(chosen.setting.buffer_size),
                human_bytes(chosen.setting.buffer_size),
                if chosen.ran_dry > 0 {
                    format!(
                        ", although the ring ran dry in {} of {} repeats",
                        chosen.ran_dry, chosen.repeats
                    )
                } else {
                    String::new()
                }
            ));
        }
        if !self.failed.is_empty() {
            reasons.push(format!(
                "Left out for errors: {}.",
                self.failed
                    .iter()
                    .map(Setting::label)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        reasons
    }

    fn memory_sentence(&self) -> String {
        let chosen = &self.chosen;
        let best = &self.best_p99;
        let largest = &self.largest_ring;
        let rss = |s: &Summary| kib(s.rss_per_connection_bytes);
        let mut sentence = format!(
            "Memory: the chosen ring holds {} per worker; the best-p99 setting's holds {}",
            bytes(chosen.ring_bytes),
            bytes(best.ring_bytes),
        );
        if largest.setting != best.setting {
            sentence += &format!(
                " and the largest swept ({}) {}",
                largest.setting.label(),
                bytes(largest.ring_bytes)
            );
        }
        sentence += &format!(
            ". Measured server RSS per connection under load: {} chosen, {} best-p99, {} largest ring.",
            rss(chosen),
            rss(best),
            rss(largest)
        );
        sentence
    }
}

fn knee_sentence(knee: &Knee, t: f64) -> String {
    let (at_size, at_p99) = knee.at;
    let mut sentence = match knee.below {
        Some((size, p99)) => format!(
            "Knee of the {} line at {}: p99 {} there, within {:.0}% of the line's best {}; \
             one step smaller, at {}, it rises to {} (+{:.0}%).",
            knee.series,
            human_bytes(at_size),
            us(at_p99),
            t * 100.0,
            us(knee.best_p99_us),
            human_bytes(size),
            us(p99),
            (p99 / knee.best_p99_us - 1.0) * 100.0
        ),
        None => format!(
            "No knee inside the sweep on the {} line: already at the smallest size, {}, p99 \
             ({}) is within {:.0}% of the line's best {}; the curve is flat over the range.",
            knee.series,
            human_bytes(at_size),
            us(at_p99),
            t * 100.0,
            us(knee.best_p99_us)
        ),
    };
    if let Some((size, p99)) = knee.rises_again {
        sentence += &format!(
            " Larger is not always better: at {} p99 is {} (+{:.0}%).",
            human_bytes(size),
            us(p99),
            (p99 / knee.best_p99_us - 1.0) * 100.0
        );
    }
    sentence
}

fn us(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} ms", value / 1000.0)
    } else {
        format!("{value:.0} us")
    }
}

fn kib(value: f64) -> String {
    if value.is_finite() {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        "n/a".to_string()
    }
}

fn bytes(value: usize) -> String {
    if value == 0 {
        "nothing (no ring)".to_string()
    } else {
        human_bytes(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uring(size: usize, buffers: usize) -> Setting {
        Setting {
            backend: IoBackend::Uring,
            buffer_size: size,
            buffers,
            socket_buffer: None,
        }
    }

    fn epoll(size: usize) -> Setting {
        Setting {
            backend: IoBackend::Epoll,
            buffer_size: size,
            buffers: 128,
            socket_buffer: None,
        }
    }

    /// A summary of three repeats whose p99 spread is `spread` of the median.
    fn point(setting: Setting, p99: f64, spread: f64) -> Summary {
        Summary {
            setting,
            repeats: 3,
            msgs_per_sec: 25_600.0,
            p50_us: p99 / 3.0,
            p99_us: p99,
            p99_9_us: p99 * 2.0,
            p99_range_us: (p99 * (1.0 - spread / 2.0), p99 * (1.0 + spread / 2.0)),
            msgs_range: (25_500.0, 25_700.0),
            cpu_us_per_msg: 12.0,
            cpu_range_us: (11.8, 12.2),
            rss_per_connection_bytes: 10_240.0,
            rss_range: (10_240.0, 10_240.0),
            ring_bytes: setting.ring_bytes(),
            errors: 0,
            ran_dry: 0,
            loadgen_bound: 0,
        }
    }

    /// A uring line at x128 with the given p99 per size (256 B upward).
    fn line(p99s: &[f64], spread: f64) -> Vec<Summary> {
        p99s.iter()
            .enumerate()
            .map(|(i, &p99)| point(uring(256 << i, 128), p99, spread))
            .collect()
    }

    #[test]
    fn tolerance_is_the_median_repeat_spread_with_a_floor() {
        let mut points = line(&[300.0, 300.0, 300.0], 0.2);
        points[0].p99_range_us = (270.0, 330.0); // 20%
        points[1].p99_range_us = (285.0, 315.0); // 10%
        points[2].p99_range_us = (255.0, 345.0); // 30%
        let t = tolerance(&points, Summary::p99_spread);
        assert!((t.fraction - 0.2).abs() < 1e-9, "{t:?}");
        assert_eq!(t.basis, ToleranceBasis::RepeatSpread { settings: 3 });
        // msg/s spread 200 / 25600 < 1%: floored.
        let rate = tolerance(&points, Summary::rate_spread);
        assert_eq!(rate.fraction, TOLERANCE_FLOOR);
        let quiet = line(&[300.0, 300.0], 0.01);
        let t = tolerance(&quiet, Summary::p99_spread);
        assert_eq!(t.fraction, TOLERANCE_FLOOR);
        assert!(matches!(t.basis, ToleranceBasis::Floor { .. }));
        let mut once = line(&[300.0], 0.0);
        once[0].repeats = 1;
        let t = tolerance(&once, Summary::p99_spread);
        assert_eq!(t.basis, ToleranceBasis::NoRepeats);
        assert_eq!(t.fraction, TOLERANCE_WITHOUT_REPEATS);
    }

    #[test]
    fn picks_the_smallest_size_at_the_knee() {
        // 256 B and 512 B are clearly worse; from 1 KiB on the curve is flat
        // within the 4% spread (floored to 5%).
        let points = line(&[900.0, 600.0, 310.0, 300.0, 305.0, 302.0], 0.04);
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(1024, 128));
        assert_eq!(r.best_p99.setting, uring(2048, 128));
        assert_eq!(
            r.flags(),
            "ringecho --io uring --receive-buffer-size 1KiB --receive-buffers 128"
        );
        let knee = r.knee.as_ref().unwrap();
        assert_eq!(knee.at, (1024, 310.0));
        assert_eq!(knee.below, Some((512, 600.0)));
        assert_eq!(knee.rises_again, None);
        let text = r.reasons(64, None).join("\n");
        assert!(
            text.contains("Knee of the uring x128 buffers line at 1KiB"),
            "{text}"
        );
        assert!(
            text.contains("at 512B, it rises to 600 us (+100%)"),
            "{text}"
        );
        assert!(text.contains("128KiB per worker"), "{text}");
        assert!(text.contains("p99 5% (the rule's floor"), "{text}");
        assert!(!text.contains("Saturated"), "{text}");
        let offered_more = r.reasons(64, Some(40_000.0)).join(" ");
        assert!(offered_more.contains("Saturated: the clients offered 40000 msg/s"));
    }

    #[test]
    fn a_noisy_tail_does_not_loosen_the_throughput_test() {
        // p99 repeats spread 150%, msg/s only 1%: a setting 20% short on
        // msg/s is still out.
        let mut points = line(&[200.0, 300.0, 305.0], 1.5);
        points[0].msgs_per_sec *= 0.8;
        let r = recommend(&points).unwrap();
        assert_eq!(r.rate_tolerance.fraction, TOLERANCE_FLOOR);
        assert_eq!(r.chosen.setting, uring(512, 128));
    }

    #[test]
    fn a_wider_spread_accepts_more_and_saves_memory() {
        // The repeats spread 40%: 400 us at 512 B is within 40% of the best
        // 300 us, so the cheaper 512 B ring qualifies; 900 us at 256 B does not.
        let points = line(&[900.0, 400.0, 310.0, 300.0, 305.0, 302.0], 0.4);
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(512, 128));
        assert_eq!(r.knee.as_ref().unwrap().below, Some((256, 900.0)));
    }

    #[test]
    fn flat_curves_take_the_smallest_ring_and_say_there_is_no_knee() {
        let mut points = line(&[300.0, 301.0, 299.0], 0.1);
        points.extend(line(&[298.0, 300.0, 302.0], 0.1).into_iter().map(|mut s| {
            s.setting.buffers = 1024;
            s.ring_bytes = s.setting.ring_bytes();
            s
        }));
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(256, 128));
        let knee = r.knee.unwrap();
        assert_eq!(knee.below, None);
        assert_eq!(r.largest_ring.setting, uring(1024, 1024));
    }

    #[test]
    fn larger_buffers_that_hurt_are_named() {
        let points = line(&[500.0, 300.0, 300.0, 450.0], 0.04);
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(512, 128));
        assert_eq!(r.knee.unwrap().rises_again, Some((2048, 450.0)));
    }

    #[test]
    fn settings_that_fall_behind_or_fail_are_left_out() {
        let mut points = line(&[200.0, 300.0, 305.0], 0.04);
        // 256 B has the best p99 but delivers 20% fewer messages.
        points[0].msgs_per_sec *= 0.8;
        // 512 B dropped an echo.
        points[1].errors = 1;
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(1024, 128));
        assert_eq!(r.failed, vec![uring(512, 128)]);
        assert!(r
            .reasons(64, None)
            .join(" ")
            .contains("Left out for errors: uring 512B x128"));
        for s in &mut points {
            s.errors = 3;
        }
        assert_eq!(recommend(&points), Err(NoRecommendation::AllFailed));
        assert_eq!(recommend(&[]), Err(NoRecommendation::Empty));
    }

    #[test]
    fn epoll_wins_only_when_as_good_and_no_costlier_in_cpu() {
        let mut points = line(&[300.0, 300.0], 0.04);
        points.push(point(epoll(256), 302.0, 0.04));
        points.push(point(epoll(512), 299.0, 0.04));
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting.backend, IoBackend::Epoll);
        assert_eq!(r.flags(), "ringecho --io epoll");
        assert!(r.knee.is_some(), "the uring line's knee is still reported");
        assert!(r
            .reasons(64, None)
            .join(" ")
            .contains("epoll has no receive ring"));
        // Same tail, but epoll burns 30% more CPU per message: uring it is.
        for s in points
            .iter_mut()
            .filter(|s| s.setting.backend == IoBackend::Epoll)
        {
            s.cpu_us_per_msg *= 1.3;
        }
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(256, 128));
    }

    #[test]
    fn measured_memory_per_connection_comes_before_the_ring_size() {
        // Same tail and CPU, but epoll holds 10 KiB per connection (its read
        // and write buffers) where the small uring ring costs 1.2 KiB: the
        // ring that costs less in RSS wins even though epoll has no ring.
        let mut points = line(&[300.0, 300.0], 0.04);
        for s in &mut points {
            s.rss_per_connection_bytes = 1_230.0;
            s.rss_range = (1_200.0, 1_260.0);
        }
        points.push(point(epoll(256), 302.0, 0.04));
        let r = recommend(&points).unwrap();
        assert_eq!(r.chosen.setting, uring(256, 128));
        assert!(r.memory_tolerance.fraction >= TOLERANCE_FLOOR);
        let text = r.reasons(64, None).join(" ");
        assert!(text.contains("RSS per connection within 5%"), "{text}");
        // A large ring that the load touched all of costs more than epoll.
        let mut big = point(uring(4096, 1024), 300.0, 0.04);
        big.rss_per_connection_bytes = 21_000.0;
        big.rss_range = (20_900.0, 21_100.0);
        let r = recommend(&[big, point(epoll(4096), 301.0, 0.04)]).unwrap();
        assert_eq!(r.chosen.setting.backend, IoBackend::Epoll);
        // Not measured at all (no RSS): the ring size alone decides.
        let mut unmeasured = line(&[300.0, 300.0], 0.04);
        for s in &mut unmeasured {
            s.rss_per_connection_bytes = f64::NAN;
            s.rss_range = (f64::NAN, f64::NAN);
        }
        let r = recommend(&unmeasured).unwrap();
        assert_eq!(r.chosen.setting, uring(256, 128));
    }

    #[test]
    fn kernel_default_socket_buffers_come_before_explicit_ones() {
        let plain = point(uring(1024, 128), 300.0, 0.04);
        let mut sized = point(
            Setting {
                socket_buffer: Some(65536),
                ..uring(1024, 128)
            },
            295.0,
            0.04,
        );
        sized.ring_bytes = plain.ring_bytes;
        let r = recommend(&[sized.clone(), plain.clone()]).unwrap();
        assert_eq!(r.chosen.setting.socket_buffer, None);
        // Clearly better tails with explicit buffers win.
        sized.p99_us = 150.0;
        sized.p99_range_us = (147.0, 153.0);
        let r = recommend(&[sized, plain]).unwrap();
        assert_eq!(r.chosen.setting.socket_buffer, Some(65536));
        assert!(r
            .flags()
            .ends_with("--socket-receive-buffer 64KiB --socket-send-buffer 64KiB"));
    }

    #[test]
    fn undersized_choices_say_what_spans_what() {
        let mut points = line(&[300.0, 302.0], 0.04);
        points[0].ran_dry = 2;
        let r = recommend(&points).unwrap();
        let text = r.reasons(1400, None).join(" ");
        assert!(text.contains("spans up to 6 buffers of 256B"), "{text}");
        assert!(text.contains("ran dry in 2 of 3 repeats"), "{text}");
    }
}
