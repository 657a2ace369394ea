//! Labels for a log10 axis in plotters, shared by the soak plots and the
//! tuning plots.

/// The label of log10 value `y` on a log axis: only at 1, 2 and 5 times a
/// power of ten (e.g. `200`, `5000`), empty elsewhere.
pub fn log_label(y: f64) -> String {
    let value = 10f64.powf(y);
    let decade = 10f64.powf(y.floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|nice| (value - nice).abs() / nice < 0.02)
        .map_or_else(String::new, |nice| format!("{nice:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_labels_only_at_one_two_five() {
        assert_eq!(log_label(3.0), "1000");
        assert_eq!(log_label(2f64.log10() + 2.0), "200");
        assert_eq!(log_label(5f64.log10() + 3.0), "5000");
        assert_eq!(log_label(3.5), "");
    }
}
