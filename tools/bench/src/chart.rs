//! The charts of docs/PERFORMANCE.md, as SVG (plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::{cold, load, scale};

const BLUE: RGBColor = RGBColor(54, 110, 180);
const GREY: RGBColor = RGBColor(170, 170, 170);

/// Horizontal pairs of bars: each function's value beside its floor's.
fn pairs(path: &Path, title: &str, unit: &str, rows: &[(String, f64, f64)]) -> Result<(), String> {
    let max = rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 60 + 44 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(200)
        .build_cartesian_2d(0.0..max.max(0.001), (0..rows.len() * 2).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(rows.len() * 2)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % 2 == 1 => labels[i / 2].clone(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (_, value, floor)) in rows.iter().enumerate() {
        for (k, v, colour) in [(2 * i, *floor, GREY), (2 * i + 1, *value, BLUE)] {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, SegmentValue::Exact(k)), (v, SegmentValue::Exact(k + 1))],
                    colour.filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// Init time of each function (blue) beside the floor's (grey).
pub fn cold(path: &Path, s: &cold::Section) -> Result<(), String> {
    let floor = s.floor_init.as_secs_f64() * 1000.0;
    let rows: Vec<(String, f64, f64)> = s
        .rows
        .iter()
        .map(|r| (r.binary.to_owned(), r.init.as_secs_f64() * 1000.0, floor))
        .collect();
    pairs(
        path,
        "Cold start: init (exec → first poll), median; grey = floor",
        "ms",
        &rows,
    )
}

/// A line of the scale chart: its name, colour and value at a size.
type Line = (&'static str, RGBColor, fn(&scale::Size) -> f64);

/// Round trips and capacity of the top 100 and my rank, by board size (log scale).
pub fn scale(path: &Path, s: &scale::Section) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_y = s
        .sizes
        .iter()
        .flat_map(|z| {
            [
                z.top.round_trips as f64,
                z.top.capacity,
                z.mine.round_trips as f64,
                z.mine.capacity,
            ]
        })
        .fold(1.0, f64::max)
        * 1.2;
    let (lo, hi) = (
        s.sizes.first().map_or(1, |z| z.entries) as f64,
        s.sizes.last().map_or(10, |z| z.entries) as f64,
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Reads as the board grows (round trips, capacity units)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0.0..max_y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("board entries")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let lines: [Line; 4] = [
        ("top 100: round trips", BLUE, |z| z.top.round_trips as f64),
        ("top 100: capacity", RGBColor(120, 170, 230), |z| z.top.capacity),
        ("my rank: round trips", RGBColor(200, 90, 40), |z| {
            z.mine.round_trips as f64
        }),
        ("my rank: capacity", RGBColor(240, 160, 90), |z| z.mine.capacity),
    ];
    for (name, colour, f) in lines {
        chart
            .draw_series(LineSeries::new(
                s.sizes.iter().map(|z| (z.entries as f64, f(z))),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Requests a second through our layer (blue) beside the bare SDK loop's (grey).
pub fn load(path: &Path, s: &load::Section) -> Result<(), String> {
    let rows: Vec<(String, f64, f64)> = s
        .rows
        .iter()
        .map(|r| (r.route.to_owned(), r.ours.rps, r.floor.rps))
        .collect();
    pairs(
        path,
        "Under load: requests/s, ours (blue) vs a bare SDK loop (grey)",
        "requests / s",
        &rows,
    )
}
