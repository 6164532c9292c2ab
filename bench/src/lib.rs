//! What the benchmark and the soak (`tributary-chaos soak`) both draw and compute: SVG
//! charts, quantiles of Prometheus histograms, CPU time of the stack's processes.

pub mod cpu;
pub mod histogram;
pub mod svg;
