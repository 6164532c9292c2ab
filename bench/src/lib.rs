//! What the benchmark and the soak (`tributary-chaos soak`) both draw and compute: SVG
//! charts and quantiles of Prometheus histograms.

pub mod histogram;
pub mod svg;
