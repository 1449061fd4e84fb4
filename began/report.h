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
void save_image_grid(const std::string& path, const Tensor& images, int64_t nrow = 0);

// (Re)writes run_dir/losses.svg and run_dir/report.html from run_dir/metrics.csv (header
// epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s) and the grids in
// run_dir/samples/ (step_NNNNNNN.png, epoch_NNNN.png, final.png). Atomic like save_image_grid. Works on a run
// with zero or one metrics row.
void write_report(const std::string& run_dir);

}  // namespace atelier::began
