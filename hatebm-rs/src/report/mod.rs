//! Pictures and plots for people: image grids and 2-D scatter plots as PNG,
//! training curves as SVG.
//!
//! * [`save_image_grid`]: a batch `[N, C, H, W]` in `[-1, 1]` as one PNG grid.
//! * [`save_scatter_png`]: 2-D points (data and/or samples) as a PNG scatter plot.
//! * [`save_svg`] / [`render_svg`]: line plots of named series, in panels.
//! * [`plot_metrics`]: the curves of selected keys of a metrics `.jsonl` file.
//!
//! Every file is written atomically (temporary file in the same folder, then a
//! rename), so a viewer never sees a half-written picture.

mod grid;
mod image;
mod metrics;
mod plot;
mod scatter;
mod ticks;

pub use grid::{GridOptions, image_grid, save_image_grid, to_u8};
pub use image::RasterImage;
pub use metrics::{metrics_series, parse_metrics_jsonl, plot_metrics, read_metrics_jsonl};
pub use plot::{Panel, PlotOptions, Series, render_svg, save_svg};
pub use scatter::{ScatterOptions, save_scatter_png, scatter_image};
