//! Pictures: charts from plain data, written atomically as PNG or SVG
//! (`canvas`: what they share; `function_grid`, `line_chart`, `image_grid`),
//! and the [`stock`] pictures of a model's predictions that every domain
//! gets by default.

mod canvas;
mod function_grid;
mod image_grid;
mod line_chart;
pub mod stock;
#[cfg(test)]
mod tests;

pub use crate::error::PlotError;
pub use function_grid::{plot_function_grid, FunctionPanel};
pub use image_grid::{
    heat, image_grid_cell, image_grid_rgb, image_grid_size, plot_image_grid, ColourBar, ImageGrid,
    Tile,
};
pub use line_chart::{plot_lines, LineChart, Series};
