//! Pictures: charts from plain data (`charts`: function grids, line charts,
//! image grids), written atomically as PNG or SVG, and the [`stock`]
//! pictures of a model's predictions that every domain gets by default.

mod charts;
pub mod stock;

pub use charts::*;
