//! Loss-curve PNG from a `metrics.jsonl` (train loss per step, validation loss per evaluation).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{io_err, BitnetError, Result};
use crate::train::Metric;

/// Draws `png` from the metrics file at `metrics`.
pub fn loss_curve(metrics: &Path, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics).map_err(io_err("reading", metrics))?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Metric>(line) {
            Ok(Metric::Train { stats, .. }) => train.push((stats.step as f64, stats.loss)),
            Ok(Metric::Eval { step, val_loss, .. }) => val.push((step as f64, val_loss)),
            Err(e) => {
                return Err(BitnetError::Plot {
                    path: png.into(),
                    msg: format!("{}: {e}", metrics.display()),
                })
            }
        }
    }
    let perr = |e: String| BitnetError::Plot {
        path: png.into(),
        msg: e,
    };
    if train.is_empty() {
        return Err(perr("no training steps to plot".into()));
    }
    let xmax = train
        .iter()
        .chain(val.iter())
        .map(|p| p.0)
        .fold(1.0, f64::max);
    let ys = train
        .iter()
        .chain(val.iter())
        .map(|p| p.1)
        .filter(|y| y.is_finite());
    let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let root = BitMapBackend::new(png, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("BitNet training loss (nats/token)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..xmax, (ymin - 0.1).max(0.0)..ymax + 0.1)
        .map_err(|e| perr(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()
        .map_err(|e| perr(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(train, &BLUE))
        .map_err(|e| perr(e.to_string()))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
    chart
        .draw_series(LineSeries::new(val, RED.stroke_width(2)))
        .map_err(|e| perr(e.to_string()))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| perr(e.to_string()))?;
    root.present().map_err(|e| perr(e.to_string()))?;
    Ok(())
}
