// The argument checks of the image primitives (conv2d and its backward passes, nearest upsampling, pooling), shared by
// every backend so each refuses the same bad geometry with the same message. `what` names the backend and the
// primitive: "cpu conv2d", "cuda upsample_nearest2d_backward".
#pragma once

#include "backends/args.h"
#include "backends/error.h"

namespace atelier {

inline void check_conv_geometry(const char* what, const Conv2dGeometry& g) {
  ATELIER_CHECK(g.n >= 0 && g.c_in > 0 && g.c_out > 0 && g.kh > 0 && g.kw > 0 && g.stride_h > 0 && g.stride_w > 0 &&
                    g.pad_h >= 0 && g.pad_w >= 0 && g.h_out == (g.h + 2 * g.pad_h - g.kh) / g.stride_h + 1 &&
                    g.w_out == (g.w + 2 * g.pad_w - g.kw) / g.stride_w + 1 && g.h_out > 0 && g.w_out > 0 &&
                    (g.input_upsample == 1 || g.input_upsample == 2) && g.h % g.input_upsample == 0 &&
                    g.w % g.input_upsample == 0,
                what << ": invalid geometry (n " << g.n << ", c_in " << g.c_in << ", h " << g.h << ", w " << g.w
                     << ", c_out " << g.c_out << ", kernel " << g.kh << "x" << g.kw << ", stride " << g.stride_h << "x"
                     << g.stride_w << ", pad " << g.pad_h << "x" << g.pad_w << ", out " << g.h_out << "x" << g.w_out
                     << ", input upsample " << g.input_upsample << ")");
}

inline void check_upsample_args(const char* what, const UpsampleNearestArgs& a) {
  ATELIER_CHECK(a.n >= 0 && a.c >= 0 && a.h >= 0 && a.w >= 0 && a.scale_h >= 1 && a.scale_w >= 1,
                what << ": invalid sizes (n " << a.n << ", c " << a.c << ", h " << a.h << ", w " << a.w << ", scale "
                     << a.scale_h << "x" << a.scale_w << ")");
}

inline void check_pool_geometry(const char* what, const Pool2dGeometry& g) {
  ATELIER_CHECK(g.planes >= 0 && g.h > 0 && g.w > 0 && g.kh > 0 && g.kw > 0 && g.stride_h > 0 && g.stride_w > 0 &&
                    g.pad_h >= 0 && g.pad_w >= 0 && 2 * g.pad_h <= g.kh && 2 * g.pad_w <= g.kw &&
                    g.h + 2 * g.pad_h >= g.kh && g.w + 2 * g.pad_w >= g.kw &&
                    g.h_out == (g.h + 2 * g.pad_h - g.kh) / g.stride_h + 1 &&
                    g.w_out == (g.w + 2 * g.pad_w - g.kw) / g.stride_w + 1,
                what << ": invalid geometry (planes " << g.planes << ", h " << g.h << ", w " << g.w << ", kernel "
                     << g.kh << "x" << g.kw << ", stride " << g.stride_h << "x" << g.stride_w << ", pad " << g.pad_h
                     << "x" << g.pad_w << ", out " << g.h_out << "x" << g.w_out << ")");
}

inline void check_pool_args(const char* what, const Pool2dGeometry& g, PoolMode mode, const int64_t* indices) {
  check_pool_geometry(what, g);
  ATELIER_CHECK(mode != PoolMode::Max || indices != nullptr, what << ": max pooling needs its indices");
}

}  // namespace atelier
