// What a person watching a BEGAN run sees: sample grids as PNG files, the loss curves as an SVG, and report.html
// (the curves and the grids by epoch and step), all in the run folder, readable from disk with no server.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace atelier::began {

// images (N, C, H, W), C = 1 or 3, values in [-1, 1] (clamped), any device, float32/float64 -> one PNG: a grid of
// `nrow` images per row (0: ceil(sqrt(N))) with a 2-pixel border. Written atomically (temporary file, rename).
// Throws atelier::Error naming the path or the shape at fault.
//
// Pixels: v -> round((v + 1) * 127.5), so -1 -> 0, 0 -> 128, 1 -> 255; a NaN is an error (naming the image and
// pixel). 8-bit grey (C = 1) or RGB (C = 3). The border, and the cells of an incomplete last row, are white. The
// grid is rows * (H + 2) + 2 pixels high and min(nrow, N) * (W + 2) + 2 wide. Missing parent folders are created.
void save_image_grid(const std::string& path, const Tensor& images, int64_t nrow = 0);

// (Re)writes run_dir/losses.svg and run_dir/report.html from run_dir/metrics.csv (header
// epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s) and the grids in
// run_dir/samples/ (step_NNNNNNN.png, epoch_NNNN.png, final.png). Atomic like save_image_grid. Works on a run
// with zero or one metrics row.
//
// Meant to be called while the trainer appends to metrics.csv: a last line cut short is left out. The columns are
// found by name (step, loss_real, loss_fake_g, loss_d, k_t and m_global are required; epoch, lr and time_s are
// shown when present). report.html is self-contained (inline CSS and SVG, no script, no network): the run summary,
// the curves, and every samples/*.png by relative path (the latest one large, then by epoch and by step), and
// config.json (link and contents) when present. Throws atelier::Error naming the file at fault.
void write_report(const std::string& run_dir);

}  // namespace atelier::began
