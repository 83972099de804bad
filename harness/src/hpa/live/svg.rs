//! A small hand-written SVG plot of the live check: the HPA's utilization and the app
//! container's utilization against the target, with the replica count on a second axis
//! and each arm's outcome marked. No plotting crate: the picture is a few polylines.

use std::fmt::Write;

use super::judge::Decision;
use super::series::{Point, Series};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 90.0;

const HPA_COLOR: &str = "#1f77b4";
const APP_COLOR: &str = "#ff7f0e";
const REPLICA_COLOR: &str = "#2ca02c";

/// The plot as an SVG document.
pub fn plot(s: &Series) -> String {
    let frame = Frame::new(s);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\">HPA check {}: utilization vs target</text>",
        escape(&s.name)
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"36\" fill=\"#555\">{}</text>",
        escape(&s.provenance)
    );
    frame.axes(&mut out);
    arms(&mut out, s, &frame);
    let hpa: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| Some((p.t, f64::from(p.hpa_utilization?))))
        .collect();
    let app: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| Some((p.t, p.app_utilization? as f64)))
        .collect();
    frame.line(&mut out, &hpa, HPA_COLOR, false);
    frame.line(&mut out, &app, APP_COLOR, false);
    let replicas: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| Some((p.t, f64::from(p.desired_replicas?))))
        .collect();
    frame.steps(&mut out, &replicas);
    legend(&mut out, s);
    out.push_str("</svg>\n");
    out
}

/// Maps data to pixels.
struct Frame {
    t_max: f64,
    y_max: f64,
    r_max: f64,
}

impl Frame {
    fn new(s: &Series) -> Frame {
        let t_max = s.points.iter().map(|p| p.t).fold(60.0, f64::max);
        let values = s.points.iter().flat_map(|p| {
            [
                p.hpa_utilization.map(f64::from),
                p.app_utilization.map(|u| u as f64),
            ]
        });
        let peak = values
            .flatten()
            .chain(s.arms.iter().map(|a| f64::from(a.target)))
            .fold(s.app_trigger as f64, f64::max);
        let y_max = ((peak * 1.15) / 25.0).ceil().max(4.0) * 25.0;
        let r_max = s
            .points
            .iter()
            .filter_map(|p| p.desired_replicas.max(p.current_replicas))
            .max()
            .unwrap_or(1)
            .max(3);
        Frame {
            t_max,
            y_max,
            r_max: f64::from(r_max),
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + t / self.t_max * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, pct: f64) -> f64 {
        HEIGHT - BOTTOM - pct / self.y_max * (HEIGHT - TOP - BOTTOM)
    }

    fn y_replicas(&self, r: f64) -> f64 {
        HEIGHT - BOTTOM - r / self.r_max * (HEIGHT - TOP - BOTTOM)
    }

    fn axes(&self, out: &mut String) {
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        let _ = writeln!(
            out,
            "<g stroke=\"#999\" fill=\"none\"><rect x=\"{x0}\" y=\"{y1}\" width=\"{}\" height=\"{}\"/></g>",
            x1 - x0,
            y0 - y1
        );
        let mut pct = 0.0;
        while pct <= self.y_max {
            let y = self.y(pct);
            let _ = writeln!(
                out,
                "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{pct:.0}%</text>",
                x0 - 6.0,
                y + 4.0
            );
            pct += 25.0;
        }
        let step = nice_step(self.t_max);
        let mut t = 0.0;
        while t <= self.t_max {
            let x = self.x(t);
            let _ = writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0}s</text>",
                y0 + 16.0
            );
            t += step;
        }
        for r in 0..=self.r_max as u32 {
            let y = self.y_replicas(f64::from(r));
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{:.1}\" fill=\"{REPLICA_COLOR}\">{r}</text>",
                x1 + 6.0,
                y + 4.0
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{REPLICA_COLOR}\">replicas</text>",
            x1 + 6.0,
            y1 - 6.0
        );
    }

    fn line(&self, out: &mut String, points: &[(f64, f64)], color: &str, dashed: bool) {
        if points.is_empty() {
            return;
        }
        let coords: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", self.x(*t), self.y(*v)))
            .collect();
        let dash = if dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
            coords.join(" ")
        );
    }

    fn steps(&self, out: &mut String, points: &[(f64, f64)]) {
        let mut coords = Vec::new();
        for (i, (t, r)) in points.iter().enumerate() {
            if i > 0 {
                coords.push(format!(
                    "{:.1},{:.1}",
                    self.x(*t),
                    self.y_replicas(points[i - 1].1)
                ));
            }
            coords.push(format!("{:.1},{:.1}", self.x(*t), self.y_replicas(*r)));
        }
        if !coords.is_empty() {
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{REPLICA_COLOR}\" stroke-width=\"2\"/>",
                coords.join(" ")
            );
        }
    }
}

/// Roughly six ticks: 30 s, 60 s, 120 s...
fn nice_step(t_max: f64) -> f64 {
    [15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| t_max / s <= 8.0)
        .unwrap_or(1200.0)
}

/// Arm boundaries, each arm's target line and its outcome.
fn arms(out: &mut String, s: &Series, f: &Frame) {
    for (i, arm) in s.arms.iter().enumerate() {
        let end = s.arms.get(i + 1).map_or(f.t_max, |next| next.start);
        let (x0, x1) = (f.x(arm.start), f.x(end));
        let y = f.y(f64::from(arm.target));
        let _ = writeln!(
            out,
            "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>"
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#444\">target {}%</text>",
            x0 + 4.0,
            y - 4.0,
            arm.target
        );
        if i > 0 {
            let _ = writeln!(
                out,
                "<line x1=\"{x0:.1}\" y1=\"{TOP}\" x2=\"{x0:.1}\" y2=\"{}\" stroke=\"#444\"/>",
                HEIGHT - BOTTOM
            );
        }
        let (word, color) = match &arm.decision {
            Decision::Pass(_) => ("pass", "#2ca02c"),
            Decision::Fail(_) => ("FAIL", "#d62728"),
            Decision::Inconclusive(_) => ("inconclusive", "#9467bd"),
        };
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"{color}\" font-weight=\"bold\">{}: {word}</text>",
            x0 + 4.0,
            TOP + 14.0,
            escape(&arm.name)
        );
    }
    let y = f.y(s.app_trigger as f64);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"{APP_COLOR}\" stroke-dasharray=\"2 3\"/>",
        WIDTH - RIGHT
    );
}

fn legend(out: &mut String, s: &Series) {
    let y = HEIGHT - BOTTOM + 36.0;
    let items = [
        (HPA_COLOR, "utilization the HPA reports for its metric (pod-level when skewed, app container when fixed)".to_string()),
        (APP_COLOR, format!("app container usage / its {} request (dotted: {}%, where the app alone scales)", s.app_request, s.app_trigger)),
        (REPLICA_COLOR, "desired replicas (right axis); dashed: the HPA's target".to_string()),
    ];
    for (i, (color, text)) in items.iter().enumerate() {
        let ly = y + i as f64 * 15.0;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>",
            LEFT + 20.0,
            LEFT + 26.0,
            ly + 4.0,
            escape(text)
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The points of one arm, for tests and callers that split the series.
pub fn arm_points<'a>(s: &'a Series, arm: &'a str) -> impl Iterator<Item = &'a Point> {
    s.points.iter().filter(move |p| p.arm == arm)
}
