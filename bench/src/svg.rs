//! Charts drawn by the benchmark itself, as standalone SVG (no plotting dependency).

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;
const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// A named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Title, axis labels and grid; x tick labels only for a numeric x axis (`x_max`).
fn frame(
    out: &mut String,
    title: &str,
    x_label: &str,
    y_label: &str,
    x_max: Option<f64>,
    y_max: f64,
) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{y_label}</text>
"##,
        W / 2.0,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = H - BOTTOM - f * (H - TOP - BOTTOM);
        let x = LEFT + f * (W - LEFT - RIGHT);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(f * y_max),
        );
        if let Some(x_max) = x_max {
            let _ = writeln!(
                out,
                r##"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - BOTTOM + 16.0,
                short(f * x_max),
            );
        }
    }
}

fn short(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1_000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Lines over a shared x axis.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let x_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max),
    );
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label, Some(x_max), y_max);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + x / x_max * (W - LEFT - RIGHT),
                    H - BOTTOM - y / y_max * (H - TOP - BOTTOM)
                )
            })
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>
<rect x="{}" y="{}" width="12" height="3" fill="{color}"/><text x="{}" y="{}">{}</text>
"##,
            points.join(" "),
            LEFT + 10.0,
            TOP + 6.0 + 16.0 * i as f64,
            LEFT + 28.0,
            TOP + 11.0 + 16.0 * i as f64,
            s.name
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One bar per (label, value).
pub fn bars(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let y_max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let mut out = String::new();
    frame(&mut out, title, "", y_label, None, y_max);
    let slot = (W - LEFT - RIGHT) / bars.len().max(1) as f64;
    for (i, (label, value)) in bars.iter().enumerate() {
        let height = value / y_max * (H - TOP - BOTTOM);
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="{}"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
"##,
            H - BOTTOM - height,
            slot * 0.6,
            COLORS[i % COLORS.len()],
            x + slot * 0.3,
            H - BOTTOM + 16.0,
            x + slot * 0.3,
            H - BOTTOM - height - 4.0,
            short(*value)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(1_234.0), 2_000.0);
        assert_eq!(nice_max(2_400.0), 2_500.0);
    }

    #[test]
    fn charts_are_svg_documents_with_every_series() {
        let svg = lines(
            "t",
            "s",
            "records/s",
            &[
                Series {
                    name: "tributary",
                    points: vec![(0.0, 1.0), (1.0, 3.0)],
                },
                Series {
                    name: "spark",
                    points: vec![(0.0, 0.5)],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">spark<"));
        let svg = bars("p", "ms", &[("p50".into(), 12.0), ("p99".into(), 80.0)]);
        assert!(svg.contains(">p50<") && svg.contains(">p99<"), "{svg}");
        // Centred texts: title, the two axis labels, and a label and a value per bar;
        // no numeric x ticks under bars.
        assert_eq!(
            svg.matches(r#"text-anchor="middle""#).count(),
            3 + 2 * 2,
            "{svg}"
        );
    }
}
