//! The app page's traffic card: request and error rates per minute as small inline SVG
//! sparklines, drawn here on the server (no script), from the router's per-minute samples
//! (`metrics::traffic`).

use crate::metrics::TrafficSeries;
use crate::metrics::traffic::SAMPLES;
use std::fmt::Write as _;

/// The drawing's box, in SVG user units.
pub const WIDTH: u32 = 240;
pub const HEIGHT: u32 = 40;
/// Room kept at the top and bottom so the line's stroke is not cut.
const PAD: f64 = 2.0;
/// Room kept at the sides, for the dot on the newest value.
const SIDE: f64 = 3.0;

/// One series drawn: the polyline's points, and the numbers shown beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparkline {
    /// `x,y x,y …` for the SVG `points` attribute; the newest value at the right edge.
    pub points: String,
    /// Where the newest value is (for a dot marking it).
    pub last_x: String,
    pub last_y: String,
    /// The minute in progress, so far.
    pub latest: u64,
    /// Over every minute shown.
    pub total: u64,
    pub peak: u64,
}

impl Sparkline {
    /// `values` oldest first, one a minute; the scale is `max` (at least 1) at the top.
    fn draw(values: &[u64], max: u64) -> Sparkline {
        let max = max.max(1) as f64;
        // One step per sample slot (the full ring and the minute in progress), so a new app's
        // few minutes sit at the right, at the spacing they will have once the hour is full.
        let right = f64::from(WIDTH) - SIDE;
        let step = (right - SIDE) / SAMPLES as f64;
        let n = values.len();
        let mut points = String::with_capacity(n * 12);
        let (mut last_x, mut last_y) = (0.0, 0.0);
        for (i, v) in values.iter().enumerate() {
            let x = right - (n - 1 - i) as f64 * step;
            let y = f64::from(HEIGHT) - PAD - (*v as f64 / max) * (f64::from(HEIGHT) - 2.0 * PAD);
            let _ = write!(points, "{}{x:.1},{y:.1}", if i > 0 { " " } else { "" });
            (last_x, last_y) = (x, y);
        }
        Sparkline {
            points,
            last_x: format!("{last_x:.1}"),
            last_y: format!("{last_y:.1}"),
            latest: values.last().copied().unwrap_or(0),
            total: values.iter().sum(),
            peak: values.iter().copied().max().unwrap_or(0),
        }
    }
}

/// Both series of an app, drawn to one scale (errors are a part of requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficCard {
    pub requests: Sparkline,
    pub errors: Sparkline,
    /// How many minutes the lines cover.
    pub minutes: usize,
    /// 5xx responses as a share of all, over the minutes shown (`0.0` with no requests).
    pub error_percent: String,
}

impl TrafficCard {
    /// The card of an app the router knows nothing of yet: two flat lines.
    pub fn new(series: Option<TrafficSeries>) -> TrafficCard {
        let series = series.unwrap_or(TrafficSeries {
            requests: vec![0],
            errors: vec![0],
        });
        let max = series.requests.iter().copied().max().unwrap_or(0);
        let requests = Sparkline::draw(&series.requests, max);
        let errors = Sparkline::draw(&series.errors, max);
        let error_percent = if requests.total == 0 {
            "0.0".to_string()
        } else {
            format!("{:.1}", errors.total as f64 * 100.0 / requests.total as f64)
        };
        TrafficCard {
            requests,
            errors,
            minutes: series.requests.len(),
            error_percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_value_is_at_the_right_edge_and_the_peak_at_the_top() {
        let card = TrafficCard::new(Some(TrafficSeries {
            requests: vec![0, 10, 5],
            errors: vec![0, 1, 0],
        }));
        assert_eq!(card.requests.points, "229.2,38.0 233.1,2.0 237.0,20.0");
        assert_eq!((card.requests.latest, card.requests.total), (5, 15));
        assert_eq!(
            (card.requests.last_x.as_str(), card.requests.last_y.as_str()),
            ("237.0", "20.0")
        );
        assert_eq!(card.errors.peak, 1);
        assert_eq!(card.error_percent, "6.7");
        assert_eq!(card.minutes, 3);
    }

    #[test]
    fn an_app_without_traffic_gets_a_flat_line() {
        let card = TrafficCard::new(None);
        assert_eq!(card.requests.points, "237.0,38.0");
        assert_eq!(card.error_percent, "0.0");
    }
}
