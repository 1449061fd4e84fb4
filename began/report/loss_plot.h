// The training curves of a BEGAN run as one SVG: stacked panels sharing the step axis (the three losses, k_t,
// M_global and, when logged, the learning rate), each series drawn per step (thin) and as a moving average (thick).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "began/report/metrics_csv.h"

namespace atelier::began {

// The trailing moving average of `values` over `window` entries (non-finite values are left out of the mean; NaN
// where the window holds no finite value). Same length as `values`.
std::vector<double> moving_average(const std::vector<double>& values, int64_t window);

// The window write_report uses for `rows` steps: about 2% of the run, at least 1.
int64_t moving_average_window(int64_t rows);

// A complete SVG document (with XML declaration) for `table`. A table without rows gives the empty panels with
// a "no metrics yet" note. Past about a thousand rows each per-step line keeps, per 2-pixel column, the lowest and
// highest value (in step order), so spikes stay visible and the file stays small (about 100 KB at 100k rows).
// With a finite gamma > 0 (the run's setting), the losses panel also has a dashed gamma * L(x) line (its moving
// average), the equilibrium L(G(z)) should approach.
std::string render_loss_svg(const MetricsTable& table, double gamma = std::numeric_limits<double>::quiet_NaN());

}  // namespace atelier::began
