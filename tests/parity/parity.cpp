#include "tests/parity/parity.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "autograd/functions.h"
#include "backends/norm_math.h"
#include "backends/pool_math.h"
#include "backends/precision.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/shape.h"

namespace atelier::parity {
namespace {

constexpr DType f32 = DType::Float32, f64 = DType::Float64, i64 = DType::Int64, b8 = DType::Bool, u8 = DType::UInt8;
const std::vector<DType> kAllDTypes = {f32, f64, i64, b8, u8};
const std::vector<DType> kFloating = {f32, f64};
const std::vector<DType> kSigned = {f32, f64, i64};

// ---- inputs: made on the CPU from fixed keys (so every device gets the same values), then moved ----

// U[lo, hi) of shape `s`, rounded down to integers for an integral or bool dtype (bool: nonzero is true).
Tensor make(const Shape& s, DType dtype, uint64_t stream, Device device, double lo = -1, double hi = 1) {
  std::vector<double> v = uniform(s, lo, hi, RandomKey{2024, stream, 0}, f64).to_vector<double>();
  if (!is_floating(dtype)) {
    for (double& x : v) x = std::floor(x);
  }
  return from_vector(v, s, dtype).to(device);
}

// Values on a grid of `step` in [lo, hi): ties and equal pairs happen (argmax, compare).
Tensor make_grid(const Shape& s, DType dtype, uint64_t stream, Device device, double lo, double hi, double step) {
  std::vector<double> v = uniform(s, lo, hi, RandomKey{2025, stream, 0}, f64).to_vector<double>();
  for (double& x : v) x = std::floor(x / step) * step;
  return from_vector(v, s, dtype).to(device);
}

Tensor make_index(const Shape& s, int64_t size, uint64_t stream, Device device) {
  return make(s, i64, stream, device, 0, static_cast<double>(size));
}

Layout layout(const Tensor& t) { return make_layout(t.shape(), t.strides()); }

// The strides that present `t` with shape `out` (NumPy broadcasting: 0 on broadcast dimensions).
Layout broadcast(const Tensor& t, const Shape& out) {
  Shape strides(out.size(), 0);
  const size_t lead = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) {
    strides[lead + i] = t.shape()[i] == 1 && out[lead + i] != 1 ? 0 : t.strides()[i];
  }
  return make_layout(out, strides);
}

// A one-dimensional layout of `size` elements `stride` apart, and the empty (0-d) layout.
Layout dim1(int64_t size, int64_t stride) { return make_layout({size}, {stride}); }

template <PrimitiveOp op>
void run_on(Device device, int64_t work, const typename Primitive<op>::Args& args) {
  launch<op>(backend_for(device), "parity", work, args);
}

// ---- the rows, one family at a time ----

using Rows = std::vector<PrimitiveRow>;

void add(Rows& rows, PrimitiveOp op, DType dtype, const std::string& name, Tolerance tolerance,
         std::function<std::vector<Tensor>(Device)> run) {
  rows.push_back(
      {op, dtype, std::string(primitive_name(op)) + "/" + dtype_name(dtype) + "/" + name, tolerance, std::move(run)});
}

// Integers compare exactly; floating results of sums within the norm tolerance.
Tolerance exact_if_integral(DType dtype, Tolerance floating) {
  return is_floating(dtype) ? floating : Tolerance::Exact;
}

void copy_rows(Rows& rows) {
  for (DType dtype : kAllDTypes) {
    add(rows, PrimitiveOp::copy, dtype, "permuted_source", Tolerance::Exact, [dtype](Device d) {
      const Tensor src = make({4, 3, 5}, dtype, 1, d, -5, 6).permute({2, 0, 1});  // (5, 4, 3), strided
      Tensor dst = empty(src.shape(), dtype, d);
      CopyArgs a{};
      a.dtype = dtype;
      a.dst = layout(dst);
      a.dst_data = dst.raw_data();
      a.src = layout(src);
      a.src_data = src.raw_data();
      run_on<PrimitiveOp::copy>(d, dst.numel(), a);
      return std::vector<Tensor>{dst};
    });
  }
}

// Sources with the edge cases of backends/convert.h: fractions, negatives, values past uint8 and int64, NaN.
Tensor cast_source(DType dtype, Device d) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v;
  switch (dtype) {
    case DType::Float32:
    case DType::Float64: v = {-3.7, -0.5, 0.0, 0.5, 2.5, 255.5, 300.0, 1e10, -1e10, nan, inf, -inf}; break;
    case DType::Int64: v = {-300, -1, 0, 1, 2, 255, 256, 1e12, -7, 42, 100, 3}; break;
    case DType::Bool: v = {0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0}; break;
    case DType::UInt8: v = {0, 1, 2, 200, 255, 17, 128, 127, 3, 4, 5, 6}; break;
  }
  // (4, 3) transposed: a strided (3, 4) source.
  return from_vector(v, {4, 3}, dtype).to(d).t();
}

void cast_rows(Rows& rows) {
  for (DType src_dtype : kAllDTypes) {
    add(rows, PrimitiveOp::cast, src_dtype, "to_every_dtype", Tolerance::Exact, [src_dtype](Device d) {
      const Tensor src = cast_source(src_dtype, d);
      std::vector<Tensor> out;
      for (DType dst_dtype : kAllDTypes) {
        Tensor dst = empty(src.shape(), dst_dtype, d);
        CastArgs a{};
        a.src_dtype = src_dtype;
        a.dst_dtype = dst_dtype;
        a.dst = layout(dst);
        a.dst_data = dst.raw_data();
        a.src = layout(src);
        a.src_data = src.raw_data();
        run_on<PrimitiveOp::cast>(d, dst.numel(), a);
        out.push_back(dst);
      }
      return out;
    });
  }
}

void fill_rows(Rows& rows) {
  for (DType dtype : kAllDTypes) {
    add(rows, PrimitiveOp::fill, dtype, "strided_view", Tolerance::Exact, [dtype](Device d) {
      Tensor base = make({6, 5}, dtype, 2, d, -5, 6);
      const Tensor view = base.slice(0, 0, 6, 2).slice(1, 1, 5);  // rows 0, 2, 4, columns 1..4
      FillArgs a{};
      a.dtype = dtype;
      a.dst = layout(view);
      a.dst_data = view.raw_data();
      a.value = 2.75;  // integers take 2, bool true
      run_on<PrimitiveOp::fill>(d, view.numel(), a);
      return std::vector<Tensor>{base};
    });
  }
}

void random_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    for (RandomKind kind : {RandomKind::Uniform, RandomKind::Normal}) {
      const bool uniform_kind = kind == RandomKind::Uniform;
      // Uniforms are bit-identical on every backend; normals (Box-Muller: log, sqrt, sin, cos) within 12 ulp.
      add(rows, PrimitiveOp::random, dtype, uniform_kind ? "uniform" : "normal",
          uniform_kind ? Tolerance::Exact : Tolerance::Ulp12, [dtype, kind, uniform_kind](Device d) {
            Tensor dst = empty({1001}, dtype, d);  // odd: a partial last Philox block
            RandomArgs a{};
            a.dtype = dtype;
            a.numel = dst.numel();
            a.dst_data = dst.raw_data();
            a.kind = kind;
            a.seed = 99;
            a.stream = 5;
            a.offset = 3;
            // Normals: mean 0, std 1, so the result is z itself, and 12 ulp bound what CUDA's log, sqrt, cos and
            // sin round differently from libm. The bound, for float64 z = sqrt(-2 log u1) cos(2 pi u2), counted
            // in units of 2^-53 relative (an ulp of x is 1-2 such units of x, depending on where x sits in its
            // binade): CUDA's double log is within 1 ulp and cos/sin within 2 (CUDA's documented maxima), glibc's
            // within 1 of each. log: the two differ by up to 2 ulp, 4 units; the sqrt halves that to 2 and each
            // side rounds it by half an ulp, 2 more; cos/sin differ by up to 3 ulp, 6 units; the product's
            // rounding, half an ulp each side, 2 more: 12 units, and a result just below a power of two has an
            // ulp of 1 unit, so 12 ulp in the worst case (typical differences are 0-2 ulp). A wrong formula misses
            // by orders of magnitude. float32 z is the double z rounded once, so there the two backends differ by
            // at most 1 ulp. (A mean that cancels std * z turns an ulp of z into many ulps of a small result; the
            // mean and std go through the same fma as the uniforms' lo and hi.)
            a.a = uniform_kind ? -2.0 : 0.0;
            a.b = uniform_kind ? 3.0 : 1.0;
            run_on<PrimitiveOp::random>(d, dst.numel(), a);
            return std::vector<Tensor>{dst};
          });
    }
  }
}

void unary_rows(Rows& rows) {
  struct Case {
    UnaryOp op;
    bool positive;  // log, sqrt, pow: inputs in [0.1, 2)
    double p0, p1;
  };
  const std::vector<Case> cases = {
      {UnaryOp::Neg, false, 0, 0},          {UnaryOp::Exp, false, 0, 0},          {UnaryOp::Log, true, 0, 0},
      {UnaryOp::Abs, false, 0, 0},          {UnaryOp::Sign, false, 0, 0},         {UnaryOp::Sqrt, true, 0, 0},
      {UnaryOp::Tanh, false, 0, 0},         {UnaryOp::Sigmoid, false, 0, 0},      {UnaryOp::Relu, false, 0, 0},
      {UnaryOp::Elu, false, 0.7, 0},        {UnaryOp::Pow, true, 1.7, 0},         {UnaryOp::Clamp, false, -0.5, 0.8},
      {UnaryOp::Softplus, false, 1.5, 2.0}, {UnaryOp::LeakyRelu, false, -0.2, 0}, {UnaryOp::Silu, false, 0, 0},
      {UnaryOp::Gelu, false, 0, 0},         {UnaryOp::GeluTanh, false, 0, 0}};
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::unary, dtype, "every_op_transposed", Tolerance::Elementwise, [dtype, cases](Device d) {
      const Tensor mixed = make({7, 5}, dtype, 3, d, -2, 2).t();  // (5, 7), strided
      const Tensor positive = make({7, 5}, dtype, 4, d, 0.1, 2).t();
      std::vector<Tensor> out;
      for (const Case& c : cases) {
        const Tensor& src = c.positive ? positive : mixed;
        Tensor dst = empty(src.shape(), dtype, d);
        UnaryArgs a{};
        a.op = c.op;
        a.dtype = dtype;
        a.src = layout(src);
        a.src_data = src.raw_data();
        a.dst_data = dst.raw_data();
        a.p0 = c.p0;
        a.p1 = c.p1;
        run_on<PrimitiveOp::unary>(d, dst.numel(), a);
        out.push_back(dst);
      }
      return out;
    });
  }
}

// Which operand of a binary, compare or where call is the scalar that travels by value (data null, strides 0), if
// any.
enum class ScalarOperand { none, b, a };

// Sets the operands a and b of binary, compare or where args: x and y broadcast to out_shape, the one that `form`
// names replaced by the args' scalar.
template <class Args>
void set_operands(Args& a, ScalarOperand form, const Tensor& x, const Tensor& y, const Shape& out_shape) {
  const Layout by_value = make_layout(out_shape, Shape(out_shape.size(), 0));
  a.a = form == ScalarOperand::a ? by_value : broadcast(x, out_shape);
  a.a_data = form == ScalarOperand::a ? nullptr : x.raw_data();
  a.b = form == ScalarOperand::b ? by_value : broadcast(y, out_shape);
  a.b_data = form == ScalarOperand::b ? nullptr : y.raw_data();
}

// Appends to `out` one result of binary or compare (`prim`, args `Args`) op `op` per entry of `forms`: x against y
// broadcast to out_shape (none), x against the scalar `scalar` (b), the scalar against y (a; binary only).
template <PrimitiveOp prim, class Args, class Op>
void run_map(std::vector<Tensor>& out, Device d, Op op, DType dtype, DType out_dtype, const Tensor& x, const Tensor& y,
             double scalar, const Shape& out_shape, std::initializer_list<ScalarOperand> forms) {
  for (ScalarOperand form : forms) {
    Tensor dst = empty(out_shape, out_dtype, d);
    Args a{};
    a.op = op;
    a.dtype = dtype;
    set_operands(a, form, x, y, out_shape);
    a.scalar = scalar;
    a.dst_data = static_cast<decltype(a.dst_data)>(dst.raw_data());
    run_on<prim>(d, dst.numel(), a);
    out.push_back(dst);
  }
}

void binary_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::binary, dtype, "every_op_broadcast_and_scalar_both_sides", Tolerance::Elementwise,
        [dtype](Device d) {
          const Tensor x = make({3, 1, 5}, dtype, 5, d, 0.2, 2);  // positive: pow's base
          const Tensor y = make({4, 5}, dtype, 6, d, 0.5, 2);     // away from 0: the divisor
          std::vector<Tensor> out;
          for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow,
                              BinaryOp::Maximum, BinaryOp::Minimum}) {
            run_map<PrimitiveOp::binary, BinaryArgs>(out, d, op, dtype, dtype, x, y, 0.75, {3, 4, 5},
                                                     {ScalarOperand::none, ScalarOperand::b, ScalarOperand::a});
          }
          return out;
        });
  }
}

void compare_rows(Rows& rows) {
  for (DType dtype : kSigned) {
    add(rows, PrimitiveOp::compare, dtype, "every_op_broadcast_and_scalar_with_ties", Tolerance::Exact,
        [dtype](Device d) {
          const Tensor x = make_grid({3, 1, 5}, dtype, 7, d, -2, 2, 1);  // integers in [-2, 2): many equal pairs
          const Tensor y = make_grid({4, 5}, dtype, 8, d, -2, 2, 1);
          std::vector<Tensor> out;
          for (CompareOp op :
               {CompareOp::Eq, CompareOp::Ne, CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le}) {
            // The scalar 0 ties with every 0 of x.
            run_map<PrimitiveOp::compare, CompareArgs>(out, d, op, dtype, b8, x, y, 0.0, {3, 4, 5},
                                                       {ScalarOperand::none, ScalarOperand::b});
          }
          return out;
        });
  }
}

void where_rows(Rows& rows) {
  for (DType dtype : kAllDTypes) {
    add(rows, PrimitiveOp::where, dtype, "broadcast_and_scalar_both_sides", Tolerance::Exact, [dtype](Device d) {
      const Tensor cond = make({3, 1}, b8, 9, d, -1, 1);  // floor of [-1, 1): -1 (true) or 0 (false)
      const Tensor x = make({3, 4}, dtype, 10, d, -5, 6);
      const Tensor y = make({4}, dtype, 11, d, -5, 6);
      const Shape out_shape = {3, 4};
      std::vector<Tensor> out;
      for (ScalarOperand form : {ScalarOperand::none, ScalarOperand::b, ScalarOperand::a}) {
        Tensor dst = empty(out_shape, dtype, d);
        WhereArgs a{};
        a.dtype = dtype;
        a.cond = broadcast(cond, out_shape);
        a.cond_data = static_cast<const bool*>(cond.raw_data());
        set_operands(a, form, x, y, out_shape);
        a.scalar = 3.0;  // true as a bool
        a.dst_data = dst.raw_data();
        run_on<PrimitiveOp::where>(d, dst.numel(), a);
        out.push_back(dst);
      }
      return out;
    });
  }
}

void activation_backward_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::activation_backward, dtype, "every_op_transposed_output", Tolerance::Elementwise,
        [dtype](Device d) {
          const Tensor grad = make({5, 7}, dtype, 19, d, -2, 2);
          // y = op(x) of x in [-3, 2), made on the CPU (both devices read the same y), transposed (strided).
          const Tensor x = make({7, 5}, dtype, 20, Device::cpu(), -3, 2);
          std::vector<Tensor> out;
          for (UnaryOp op : {UnaryOp::Elu, UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Softplus,
                             UnaryOp::LeakyRelu, UnaryOp::Silu, UnaryOp::Gelu, UnaryOp::GeluTanh}) {
            // The last five read x itself: Softplus with beta 1.5, threshold 1 (beta x from -4.5 to 3, on both
            // sides), LeakyRelu with slope 0.3.
            const double alpha = op == UnaryOp::Elu         ? 0.7
                                 : op == UnaryOp::Softplus  ? 1.5
                                 : op == UnaryOp::LeakyRelu ? 0.3
                                                            : 0.0;
            const Tensor fx = op == UnaryOp::Elu       ? elu(x, alpha)
                              : op == UnaryOp::Relu    ? relu(x)
                              : op == UnaryOp::Tanh    ? tanh(x)
                              : op == UnaryOp::Sigmoid ? sigmoid(x)
                                                       : x;
            const Tensor y = fx.to(d).t();
            Tensor dst = empty(grad.shape(), dtype, d);
            ActivationBackwardArgs a{};
            a.op = op;
            a.dtype = dtype;
            a.grad = layout(grad);
            a.grad_data = grad.raw_data();
            a.out = layout(y);
            a.out_data = y.raw_data();
            a.dst_data = dst.raw_data();
            a.alpha = alpha;
            a.threshold = 1.0;
            run_on<PrimitiveOp::activation_backward>(d, dst.numel(), a);
            out.push_back(dst);
          }
          return out;
        });
  }
}

// One reduction of `src` per case, each into a fresh tensor of the kept shape.
struct ReduceCase {
  ReduceOp op;
  Layout kept, reduced;
};

std::vector<Tensor> run_reduce_cases(Device d, DType dtype, const Tensor& src, const std::vector<ReduceCase>& cases) {
  std::vector<Tensor> out;
  for (const ReduceCase& c : cases) {
    Shape kept_shape(c.kept.sizes, c.kept.sizes + c.kept.ndim);
    Tensor dst = empty(kept_shape, dtype, d);
    ReduceArgs a{};
    a.op = c.op;
    a.dtype = dtype;
    a.kept = c.kept;
    a.reduced = c.reduced;
    a.src_data = src.raw_data();
    a.dst_data = dst.raw_data();
    run_on<PrimitiveOp::reduce>(d, dst.numel(), a);
    out.push_back(dst);
  }
  return out;
}

// Each (kept, reduced) pair under sum and max, and mean for a floating dtype.
std::vector<ReduceCase> every_op(DType dtype, const std::vector<std::pair<Layout, Layout>>& splits) {
  std::vector<ReduceCase> cases;
  for (const auto& [kept, reduced] : splits) {
    cases.push_back({ReduceOp::Sum, kept, reduced});
    cases.push_back({ReduceOp::Max, kept, reduced});
    if (is_floating(dtype)) cases.push_back({ReduceOp::Mean, kept, reduced});
  }
  return cases;
}

// `values` with NaN written at the given flat positions (made on the CPU, then moved).
Tensor with_nans(const Tensor& values, const std::vector<int64_t>& positions, Device d) {
  std::vector<double> v = values.to_vector<double>();
  for (int64_t i : positions) v[static_cast<size_t>(i)] = std::numeric_limits<double>::quiet_NaN();
  return from_vector(v, values.shape(), values.dtype()).to(d);
}

// The GPU's three reduction paths (backends/cuda/reduce.cu): one thread per output below 64 reduced elements,
// one block per output, and a long range cut into chunks over many blocks whose partials a second pass combines
// (fewer than 264 outputs of at least 4,096 elements).
void reduce_rows(Rows& rows) {
  const Layout none = make_layout({}, {});
  for (DType dtype : kSigned) {
    add(rows, PrimitiveOp::reduce, dtype, "sum_mean_max_over_dims", exact_if_integral(dtype, Tolerance::Norm),
        [dtype, none](Device d) {
          // src (5, 67, 3): dim 1 is long enough for the GPU's block-per-output path, dims (0, 2) short.
          const Tensor src = make({5, 67, 3}, dtype, 12, d, -10, 10);
          std::vector<ReduceCase> cases = {
              {ReduceOp::Sum, make_layout({5, 3}, {201, 1}), dim1(67, 3)},
              {ReduceOp::Sum, dim1(67, 3), make_layout({5, 3}, {201, 1})},
              {ReduceOp::Sum, none, make_layout({5, 67, 3}, {201, 3, 1})},
              {ReduceOp::Max, make_layout({5, 3}, {201, 1}), dim1(67, 3)},
              {ReduceOp::Max, none, make_layout({3, 5, 67}, {1, 201, 3})},
          };
          if (is_floating(dtype)) {
            cases.push_back({ReduceOp::Mean, make_layout({5, 3}, {201, 1}), dim1(67, 3)});
            cases.push_back({ReduceOp::Mean, dim1(67, 3), make_layout({5, 3}, {201, 1})});
          }
          return run_reduce_cases(d, dtype, src, cases);
        });
    // 1, 2 and 3 outputs of 200,000 elements each (BEGAN's L1 losses), the range contiguous, strided, or two
    // dimensions that do not merge, the inner one longer or shorter than a block (200: the GPU's two-run path
    // wraps once per step), or three (the plan's divisions); 300 outputs of two dimensions whose inner one has 3
    // elements (the two-run path's index wraps 85 times per step).
    add(rows, PrimitiveOp::reduce, dtype, "long_into_few_outputs", exact_if_integral(dtype, Tolerance::Norm),
        [dtype, none](Device d) {
          const Tensor src = make({200, 3, 1000}, dtype, 14, d, -10, 10);
          return run_reduce_cases(d, dtype, src,
                                  every_op(dtype, {
                                                      {none, dim1(200000, 1)},
                                                      {dim1(3, 200000), dim1(200000, 1)},
                                                      {dim1(2, 1), dim1(200000, 3)},
                                                      {dim1(3, 1000), make_layout({200, 1000}, {3000, 1})},
                                                      {make_layout({1}, {0}), make_layout({1000, 200}, {1, 1000})},
                                                      {dim1(300, 1), make_layout({200, 3}, {3000, 1000})},
                                                      {dim1(3, 1000), make_layout({200, 10, 100}, {3000, 1, 10})},
                                                  }));
        });
    // Many outputs of few elements: 63 (one thread each), 64 and 65 (one block each, just above the threshold),
    // 300 outputs of 65 read across rows; 100 outputs of 4,400 (four chunks each, the last of 80).
    add(rows, PrimitiveOp::reduce, dtype, "many_short_outputs", exact_if_integral(dtype, Tolerance::Norm),
        [dtype](Device d) {
          const Tensor src = make({300, 65}, dtype, 15, d, -10, 10);
          std::vector<Tensor> out = run_reduce_cases(d, dtype, src,
                                                     every_op(dtype, {
                                                                         {dim1(300, 65), dim1(63, 1)},
                                                                         {dim1(300, 65), dim1(64, 1)},
                                                                         {dim1(300, 65), dim1(65, 1)},
                                                                         {dim1(65, 1), dim1(300, 65)},
                                                                     }));
          const Tensor wide = make({100, 4400}, dtype, 16, d, -10, 10);
          for (Tensor& t : run_reduce_cases(d, dtype, wide, every_op(dtype, {{dim1(100, 4400), dim1(4400, 1)}}))) {
            out.push_back(t);
          }
          return out;
        });
  }
  for (DType dtype : kFloating) {
    // A NaN in one chunk of one output of a split reduction: that output is NaN, the other is its maximum.
    add(rows, PrimitiveOp::reduce, dtype, "max_nan_in_one_chunk", Tolerance::Exact, [dtype](Device d) {
      const Tensor src = with_nans(make({2, 200000}, dtype, 17, Device::cpu(), -10, 10), {200000 + 150001}, d);
      return run_reduce_cases(d, dtype, src, {{ReduceOp::Max, dim1(2, 200000), dim1(200000, 1)}});
    });
  }
  // 2^24 then 199,999 ones: exact in double, while a float accumulator anywhere (a thread, a block's combine or
  // the partials) drops ones at 2^24.
  add(rows, PrimitiveOp::reduce, f32, "float32_sums_in_double", Tolerance::Exact, [none](Device d) {
    std::vector<float> v(200000, 1.0f);
    v[0] = 16777216.0f;
    const Tensor src = from_vector(v, {200000}).to(d);
    return run_reduce_cases(d, f32, src,
                            {{ReduceOp::Sum, none, dim1(200000, 1)}, {ReduceOp::Mean, none, dim1(200000, 1)}});
  });
  // Values up to 9e18 in magnitude: the sums wrap modulo 2^64, the same in any order.
  add(rows, PrimitiveOp::reduce, i64, "int64_sums_wrap", Tolerance::Exact, [none](Device d) {
    const Tensor src = make({2, 200000}, i64, 18, d, -9e18, 9e18);
    return run_reduce_cases(
        d, i64, src, {{ReduceOp::Sum, dim1(2, 200000), dim1(200000, 1)}, {ReduceOp::Sum, none, dim1(400000, 1)}});
  });
}

void argmax_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::argmax, dtype, "rows_and_columns_with_ties", Tolerance::Exact, [dtype](Device d) {
      const Tensor src = make_grid({7, 130}, dtype, 13, d, -1, 1, 0.25);  // 8 values: ties everywhere
      std::vector<Tensor> out;
      // Along dim 1 (contiguous rows), then along dim 0 (stride 130).
      for (bool along_rows : {true, false}) {
        Tensor dst = empty({along_rows ? 7 : 130}, i64, d);
        ArgmaxArgs a{};
        a.dtype = dtype;
        a.kept = along_rows ? dim1(7, 130) : dim1(130, 1);
        a.reduced_size = along_rows ? 130 : 7;
        a.reduced_stride = along_rows ? 1 : 130;
        a.src_data = src.raw_data();
        a.dst_data = static_cast<int64_t*>(dst.raw_data());
        run_on<PrimitiveOp::argmax>(d, dst.numel(), a);
        out.push_back(dst);
      }
      return out;
    });
  }
}

// log_softmax and its gradient along the middle dimension of (outer, dim, inner) views that reach both backends'
// paths: the last dimension long (the GPU's block per row: 300 >= 64) and short (a thread per row), and rows
// strided by inner 5 and by 70 (the CPU's blocks of 64 rows: one full, one of 6). The forward's first case holds
// the special values of the contract (backends/args.h): a NaN (row 1), +inf (row 2), -inf (row 3: that element
// -inf, the others finite) and logits of 1000 (row 4).
struct SoftmaxCase {
  int64_t outer, dim, inner;
};
const SoftmaxCase kSoftmaxCases[] = {{5, 300, 1}, {9, 20, 1}, {6, 7, 5}, {2, 3, 70}};

Tensor softmax_source(const SoftmaxCase& c, DType dtype, uint64_t stream, Device d, bool special) {
  const Tensor values = make({c.outer, c.dim, c.inner}, dtype, stream, Device::cpu(), -6, 6);
  if (!special) return values.to(d);
  std::vector<double> v = values.to_vector<double>();
  const double inf = std::numeric_limits<double>::infinity();
  v[static_cast<size_t>(1 * c.dim + 17)] = std::numeric_limits<double>::quiet_NaN();
  v[static_cast<size_t>(2 * c.dim + 250)] = inf;
  v[static_cast<size_t>(3 * c.dim + 3)] = -inf;
  for (int64_t j = 0; j < c.dim; ++j) v[static_cast<size_t>(4 * c.dim + j)] += 1000;
  return from_vector(v, values.shape(), dtype).to(d);
}

void log_softmax_rows(Rows& rows) {
  // Each primitive in both modes: log-softmax, and softmax (args.softmax: e / s forward, y (g - sum(g y)) backward).
  for (const bool softmax : {false, true}) {
    const char* what = softmax ? "softmax_rows_short_long_strided" : "rows_short_long_strided";
    for (DType dtype : kFloating) {
      add(rows, PrimitiveOp::log_softmax, dtype, what, Tolerance::Elementwise, [dtype, softmax](Device d) {
        std::vector<Tensor> out;
        uint64_t stream = 40;
        for (const SoftmaxCase& c : kSoftmaxCases) {
          const Tensor src = softmax_source(c, dtype, stream++, d, /*special=*/out.empty());
          Tensor dst = empty(src.shape(), dtype, d);
          const LogSoftmaxArgs a{dtype, c.outer, c.dim, c.inner, src.raw_data(), dst.raw_data(), softmax};
          run_on<PrimitiveOp::log_softmax>(d, dst.numel(), a);
          out.push_back(dst);
        }
        return out;
      });
      // The norm: every element carries its row's sum, whose order each backend picks (the CPU adds runs of 256
      // in the dtype, the GPU's threads in double), so a float32 row of 300 differs by ~1e-6 of its sum of |g|
      // (seen on an H200: 1.5e-6 at an element of 0.29, over the elementwise bound 1.29e-6).
      add(rows, PrimitiveOp::log_softmax_backward, dtype, what, Tolerance::Norm, [dtype, softmax](Device d) {
        std::vector<Tensor> out;
        uint64_t stream = 50;
        for (const SoftmaxCase& c : kSoftmaxCases) {
          const Tensor grad = make({c.outer, c.dim, c.inner}, dtype, stream++, d, -1, 1);
          // A log-probability, or a probability for the softmax's gradient.
          const Tensor y = make({c.outer, c.dim, c.inner}, dtype, stream++, d, softmax ? 0 : -8, softmax ? 1 : 0);
          Tensor dst = empty(grad.shape(), dtype, d);
          const LogSoftmaxBackwardArgs a{dtype,           c.outer,      c.dim,          c.inner,
                                         grad.raw_data(), y.raw_data(), dst.raw_data(), softmax};
          run_on<PrimitiveOp::log_softmax_backward>(d, dst.numel(), a);
          out.push_back(dst);
        }
        return out;
      });
    }
  }
}

void gather_rows(Rows& rows) {
  for (DType dtype : kAllDTypes) {
    add(rows, PrimitiveOp::gather, dtype, "middle_dim", Tolerance::Exact, [dtype](Device d) {
      const Tensor src = make({3, 5, 4}, dtype, 14, d, -5, 6);
      const Tensor index = make_index({3, 2, 4}, 5, 15, d);
      Tensor dst = empty({3, 2, 4}, dtype, d);
      GatherArgs a{};
      a.dtype = dtype;
      a.outer = 3;
      a.src_dim = 5;
      a.index_dim = 2;
      a.inner = 4;
      a.src_data = src.raw_data();
      a.index_data = static_cast<const int64_t*>(index.raw_data());
      a.dst_data = dst.raw_data();
      run_on<PrimitiveOp::gather>(d, dst.numel(), a);
      return std::vector<Tensor>{dst};
    });
  }
}

void scatter_add_rows(Rows& rows) {
  for (DType dtype : kSigned) {
    add(rows, PrimitiveOp::scatter_add, dtype, "repeated_indices", exact_if_integral(dtype, Tolerance::Elementwise),
        [dtype](Device d) {
          Tensor dst = make({3, 5, 4}, dtype, 16, d, -5, 6);
          const Tensor src = make({3, 6, 4}, dtype, 17, d, -5, 6);
          const Tensor index = make_index({3, 6, 4}, 5, 18, d);  // 6 indices into 5 slots: repeats
          ScatterAddArgs a{};
          a.dtype = dtype;
          a.outer = 3;
          a.dst_dim = 5;
          a.index_dim = 6;
          a.inner = 4;
          a.src_data = src.raw_data();
          a.index_data = static_cast<const int64_t*>(index.raw_data());
          a.dst_data = dst.raw_data();
          run_on<PrimitiveOp::scatter_add>(d, src.numel(), a);
          return std::vector<Tensor>{dst};
        });
  }
}

void gemm_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::gemm, dtype, "batched_transposed_strided_shared", Tolerance::Norm, [dtype](Device d) {
      std::vector<Tensor> out;
      // Every case is 5 x 7 (M x N); the rest is set per case. Runs g and keeps C.
      auto args = [&](int64_t batch, int64_t k, const Tensor& a, int64_t lda, const Tensor& b, int64_t ldb,
                      const Tensor& c, int64_t ldc) {
        GemmArgs g{};
        g.dtype = dtype;
        g.batch = batch;
        g.m = 5;
        g.n = 7;
        g.k = k;
        g.a = a.raw_data();
        g.lda = lda;
        g.b = b.raw_data();
        g.ldb = ldb;
        g.c = c.raw_data();
        g.ldc = ldc;
        return g;
      };
      auto run = [&](const GemmArgs& g, const Tensor& c) {
        run_on<PrimitiveOp::gemm>(d, g.batch * g.m * g.n, g);
        out.push_back(c);
      };
      // 1. batch 3, one A shared by the batch (stride 0), A's rows padded (lda 12 > k 9), beta 0.
      {
        const Tensor a_store = make({5, 12}, dtype, 19, d), b = make({3, 9, 7}, dtype, 20, d);
        const Tensor c = empty({3, 5, 7}, dtype, d);
        GemmArgs g = args(3, 9, a_store, 12, b, 7, c, 7);
        g.batch_stride_a = 0;
        g.batch_stride_b = 63;
        g.batch_stride_c = 35;
        run(g, c);
      }
      // 2. both operands transposed, alpha 1.5, beta 0.5 onto a C with padded rows (ldc 10).
      {
        const Tensor a = make({2, 9, 5}, dtype, 21, d);  // stored K x M
        const Tensor b = make({2, 7, 9}, dtype, 22, d);  // stored N x K
        const Tensor c = make({2, 5, 10}, dtype, 23, d);
        GemmArgs g = args(2, 9, a, 5, b, 9, c, 10);
        g.batch_stride_a = 45;
        g.trans_a = true;
        g.batch_stride_b = 63;
        g.trans_b = true;
        g.batch_stride_c = 50;
        g.alpha = 1.5;
        g.beta = 0.5;
        run(g, c);
      }
      // 3. one C for the whole batch (stride 0), beta 1: C + A_0 B_0 + A_1 B_1, in order.
      {
        const Tensor a = make({2, 5, 9}, dtype, 24, d), b = make({2, 9, 7}, dtype, 25, d);
        const Tensor c = make({5, 7}, dtype, 26, d);
        GemmArgs g = args(2, 9, a, 9, b, 7, c, 7);
        g.batch_stride_a = 45;
        g.batch_stride_b = 63;
        g.batch_stride_c = 0;
        g.beta = 1;
        run(g, c);
      }
      // 4. empty products, which the GPU computes without cuBLAS (backends/cuda/gemm.cu): k = 0 with beta 0.5 onto
      // one C for a batch of 2 (scaled once per product: 0.25 C), and alpha 0 with a NaN in A and beta 0 onto a C
      // holding NaN (A is not read, C is overwritten: all zeros).
      {
        const Tensor a = make({5, 9}, dtype, 27, d), b = make({9, 7}, dtype, 28, d);
        const Tensor shared = make({5, 7}, dtype, 29, d);
        GemmArgs empty_product = args(2, 0, a, 1, b, 7, shared, 7);
        empty_product.beta = 0.5;
        run(empty_product, shared);
        const double nan = std::numeric_limits<double>::quiet_NaN();
        std::vector<double> a_values(45, 0.5);
        a_values[7] = nan;
        const Tensor a_nan = from_vector(a_values, {5, 9}, dtype).to(d);
        const Tensor c = from_vector(std::vector<double>(35, nan), {5, 7}, dtype).to(d);
        GemmArgs zero_alpha = args(1, 9, a_nan, 9, b, 7, c, 7);
        zero_alpha.alpha = 0;
        run(zero_alpha, c);
      }
      return out;
    });
  }
}

// The convolutions of the conv rows: 3x3 stride 2 padding 1, 1x1 (no col on the GPU), 2x3 unpadded, and a
// 1x1 with stride 2 and padding 1 (im2col of zeros at the border); then three with the input upsampled by 2 inside
// the convolution (Conv2dGeometry::input_upsample): the BEGAN decoder's 3x3 stride-1 pad-1 layer, a 1x1 (which
// must not take the GPU's no-col shortcut) and a 3x3 of stride 2, unpadded.
std::vector<Conv2dGeometry> conv_geometries() {
  auto geometry = [](int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t kh, int64_t kw,
                     int64_t stride, int64_t pad, int64_t upsample = 1) {
    Conv2dGeometry g{};
    g.n = n;
    g.c_in = c_in;
    g.h = h;
    g.w = w;
    g.c_out = c_out;
    g.kh = kh;
    g.kw = kw;
    g.stride_h = g.stride_w = stride;
    g.pad_h = g.pad_w = pad;
    g.h_out = (h + 2 * pad - kh) / stride + 1;
    g.w_out = (w + 2 * pad - kw) / stride + 1;
    g.input_upsample = upsample;
    return g;
  };
  return {geometry(3, 2, 5, 7, 4, 3, 3, 2, 1),    geometry(2, 4, 3, 5, 3, 1, 1, 1, 0),
          geometry(1, 3, 6, 5, 2, 2, 3, 1, 0),    geometry(2, 2, 5, 6, 3, 1, 1, 2, 1),
          geometry(2, 3, 6, 8, 4, 3, 3, 1, 1, 2), geometry(2, 2, 4, 6, 3, 1, 1, 1, 0, 2),
          geometry(1, 2, 6, 6, 3, 3, 3, 2, 0, 2)};
}

// The stored input of a conv row's geometry: (n, c_in, h, w), or the small image when the input is upsampled.
Shape conv_input_shape(const Conv2dGeometry& g) {
  return {g.n, g.c_in, g.h / g.input_upsample, g.w / g.input_upsample};
}

void conv_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    // Plain, and with the fused ELU (alpha 0.7 so the negative side differs from exp - 1).
    for (ConvActivation activation : {ConvActivation::None, ConvActivation::Elu}) {
      const char* what = activation == ConvActivation::None ? "geometries" : "geometries_elu";
      add(rows, PrimitiveOp::conv2d, dtype, what, Tolerance::Norm, [dtype, activation](Device d) {
        std::vector<Tensor> out;
        uint64_t stream = 30;
        for (const Conv2dGeometry& g : conv_geometries()) {
          const Tensor x = make(conv_input_shape(g), dtype, stream++, d);
          const Tensor w = make({g.c_out, g.c_in, g.kh, g.kw}, dtype, stream++, d);
          const Tensor b = make({g.c_out}, dtype, stream++, d);
          Tensor y = empty({g.n, g.c_out, g.h_out, g.w_out}, dtype, d);
          Conv2dForwardArgs a{};
          a.dtype = dtype;
          a.g = g;
          a.input = x.raw_data();
          a.weight = w.raw_data();
          a.bias = g.kh == 2 ? nullptr : b.raw_data();  // the 2x3 case runs without bias
          a.output = y.raw_data();
          a.activation = activation;
          a.alpha = 0.7;
          run_on<PrimitiveOp::conv2d>(d, y.numel(), a);
          out.push_back(y);
        }
        return out;
      });
    }
    add(rows, PrimitiveOp::conv2d_backward_input, dtype, "geometries", Tolerance::Norm, [dtype](Device d) {
      std::vector<Tensor> out;
      uint64_t stream = 50;
      for (const Conv2dGeometry& g : conv_geometries()) {
        const Tensor go = make({g.n, g.c_out, g.h_out, g.w_out}, dtype, stream++, d);
        const Tensor w = make({g.c_out, g.c_in, g.kh, g.kw}, dtype, stream++, d);
        Tensor gi = empty(conv_input_shape(g), dtype, d);
        Conv2dBackwardInputArgs a{};
        a.dtype = dtype;
        a.g = g;
        a.grad_output = go.raw_data();
        a.weight = w.raw_data();
        a.grad_input = gi.raw_data();
        run_on<PrimitiveOp::conv2d_backward_input>(d, gi.numel(), a);
        out.push_back(gi);
      }
      return out;
    });
    add(rows, PrimitiveOp::conv2d_backward_weight, dtype, "geometries", Tolerance::Norm, [dtype](Device d) {
      std::vector<Tensor> out;
      uint64_t stream = 70;
      for (const Conv2dGeometry& g : conv_geometries()) {
        const Tensor x = make(conv_input_shape(g), dtype, stream++, d);
        const Tensor go = make({g.n, g.c_out, g.h_out, g.w_out}, dtype, stream++, d);
        Tensor gw = empty({g.c_out, g.c_in, g.kh, g.kw}, dtype, d);
        Tensor gb = empty({g.c_out}, dtype, d);
        const bool with_bias = g.kh != 2;
        Conv2dBackwardWeightArgs a{};
        a.dtype = dtype;
        a.g = g;
        a.input = x.raw_data();
        a.grad_output = go.raw_data();
        a.grad_weight = gw.raw_data();
        a.grad_bias = with_bias ? gb.raw_data() : nullptr;
        run_on<PrimitiveOp::conv2d_backward_weight>(d, gw.numel(), a);
        out.push_back(gw);
        if (with_bias) out.push_back(gb);
      }
      return out;
    });
  }
}

UpsampleNearestArgs upsample_args(DType dtype, const Tensor& src, const Tensor& dst) {
  UpsampleNearestArgs a{};
  a.dtype = dtype;
  a.n = 2;
  a.c = 3;
  a.h = 3;
  a.w = 4;
  a.scale_h = 2;
  a.scale_w = 3;
  a.src = src.raw_data();
  a.dst = dst.raw_data();
  return a;
}

void upsample_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::upsample_nearest2d, dtype, "scale_2x3", Tolerance::Exact, [dtype](Device d) {
      const Tensor small = make({2, 3, 3, 4}, dtype, 90, d);
      Tensor big = empty({2, 3, 6, 12}, dtype, d);
      run_on<PrimitiveOp::upsample_nearest2d>(d, big.numel(), upsample_args(dtype, small, big));
      return std::vector<Tensor>{big};
    });
    add(rows, PrimitiveOp::upsample_nearest2d_backward, dtype, "scale_2x3", Tolerance::Elementwise, [dtype](Device d) {
      const Tensor big = make({2, 3, 6, 12}, dtype, 91, d);
      Tensor small = empty({2, 3, 3, 4}, dtype, d);
      run_on<PrimitiveOp::upsample_nearest2d_backward>(d, small.numel(), upsample_args(dtype, big, small));
      return std::vector<Tensor>{small};
    });
  }
}

// Pooling geometries over (2, 3, 7, 6) inputs: 2x2 stride 2; 3x3 stride 2 padded; 2x3 stride (1, 2) padded;
// 3x3 stride 1 (overlapping windows); 1x2 stride 3 (pixels in no window).
std::vector<Pool2dGeometry> pool_geometries() {
  auto geometry = [](HW k, HW s, HW p) { return make_pool_geometry(6, 7, 6, k.h, k.w, s.h, s.w, p.h, p.w); };
  return {geometry(2, 2, 0), geometry(3, 2, 1), geometry({2, 3}, {1, 2}, 1), geometry(3, 1, 0), geometry({1, 2}, 3, 0)};
}

void pool_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    for (PoolMode mode : {PoolMode::Max, PoolMode::Average}) {
      const bool max = mode == PoolMode::Max;
      // Max on a grid of values, so windows hold ties and the first maximum must be the one both devices pick.
      auto input = [dtype, max](uint64_t stream, Device d) {
        return max ? make_grid({2, 3, 7, 6}, dtype, stream, d, -1, 1, 0.25) : make({2, 3, 7, 6}, dtype, stream, d);
      };
      // The forward pass of geometry g on device d: output and (max) indices.
      auto forward = [dtype, mode, max](const Pool2dGeometry& g, const Tensor& x, Device d) {
        Tensor y = empty({2, 3, g.h_out, g.w_out}, dtype, d);
        Tensor idx = empty({2, 3, g.h_out, g.w_out}, i64, d);
        run_on<PrimitiveOp::pool2d>(d, y.numel(),
                                    Pool2dArgs{mode, dtype, g, x.raw_data(), y.raw_data(),
                                               max ? static_cast<int64_t*>(idx.raw_data()) : nullptr});
        return std::pair<Tensor, Tensor>{y, idx};
      };
      const char* what = max ? "max_geometries" : "average_geometries";
      add(rows, PrimitiveOp::pool2d, dtype, what, Tolerance::Exact, [=](Device d) {
        std::vector<Tensor> out;
        uint64_t stream = 130;
        for (const Pool2dGeometry& g : pool_geometries()) {
          auto [y, idx] = forward(g, input(stream++, d), d);
          out.push_back(y);
          if (max) out.push_back(idx);
        }
        return out;
      });
      add(rows, PrimitiveOp::pool2d_backward, dtype, what, Tolerance::Exact, [=](Device d) {
        std::vector<Tensor> out;
        uint64_t stream = 140;
        for (const Pool2dGeometry& g : pool_geometries()) {
          const Tensor idx = forward(g, input(stream++, d), d).second;
          const Tensor grad = make({2, 3, g.h_out, g.w_out}, dtype, stream++, d);
          Tensor dx = empty({2, 3, 7, 6}, dtype, d);
          run_on<PrimitiveOp::pool2d_backward>(
              d, dx.numel(),
              Pool2dBackwardArgs{mode, dtype, g, grad.raw_data(),
                                 max ? static_cast<const int64_t*>(idx.raw_data()) : nullptr, dx.raw_data()});
          out.push_back(dx);
        }
        return out;
      });
    }
  }
}

// Normalisation geometries (outer, groups, inner, affine, with weight, with bias, channels): batch norm's
// per-channel affine; layer norm's per-element one over rows longer than a GPU block (300 > 256 threads); no
// affine; a weight alone; group norm's per channel (2 samples of 3 groups of 2 channels of 4 elements; a bias
// alone); batch norm's short runs over enough rows for the CPU's columns layout; and affine gradients of more terms
// than a GPU block has threads (600 rows of a short layer norm; a group norm's channels over 40 samples).
struct NormCase {
  int64_t outer, groups, inner;
  NormAffine affine;
  bool weight, bias;
  NormChannels channels{};
};
const NormCase kNormCases[] = {
    {3, 4, 5, NormAffine::PerGroup, true, true},           {1, 6, 300, NormAffine::PerInner, true, true},
    {2, 3, 1, NormAffine::PerGroup, false, false},         {1, 2, 7, NormAffine::PerInner, true, false},
    {1, 6, 8, NormAffine::PerChannel, true, true, {6, 4}}, {1, 6, 8, NormAffine::PerChannel, false, true, {6, 4}},
    {70, 3, 2, NormAffine::PerGroup, true, true},          {1, 600, 4, NormAffine::PerInner, true, true},
    {40, 6, 8, NormAffine::PerChannel, true, true, {6, 4}}};

void norm_rows(Rows& rows) {
  for (DType dtype : kFloating) {
    // The forward pass of case k on device d: x, weight, bias (undefined when absent) and the primitive's outputs.
    auto forward = [dtype](const NormCase& k, uint64_t stream, Device d) {
      const int64_t affine_size = norm_affine_size(k.affine, k.groups, k.inner, k.channels);
      const Tensor x = make({k.outer, k.groups, k.inner}, dtype, stream, d, -2, 3);
      const Tensor w = k.weight ? make({affine_size}, dtype, stream + 1, d) : Tensor();
      const Tensor b = k.bias ? make({affine_size}, dtype, stream + 2, d) : Tensor();
      std::vector<Tensor> out{empty(x.shape(), dtype, d), empty({k.groups}, dtype, d), empty({k.groups}, dtype, d),
                              empty({k.groups}, dtype, d)};
      run_on<PrimitiveOp::normalize>(
          d, x.numel(),
          NormArgs{dtype, k.outer, k.groups, k.inner, k.affine, 1e-3, x.raw_data(),
                   w.defined() ? w.raw_data() : nullptr, b.defined() ? b.raw_data() : nullptr, out[0].raw_data(),
                   out[1].raw_data(), out[2].raw_data(), out[3].raw_data(), k.channels});
      return std::pair<std::vector<Tensor>, std::vector<Tensor>>{{x, w, b}, out};
    };
    add(rows, PrimitiveOp::normalize, dtype, "groups_and_rows", Tolerance::Norm, [=](Device d) {
      std::vector<Tensor> results;
      uint64_t stream = 150;
      for (const NormCase& k : kNormCases) {
        for (const Tensor& t : forward(k, stream, d).second) results.push_back(t);
        stream += 3;
      }
      return results;
    });
    add(rows, PrimitiveOp::normalize_backward, dtype, "groups_and_rows", Tolerance::Norm, [=](Device d) {
      std::vector<Tensor> results;
      uint64_t stream = 160;
      for (const NormCase& k : kNormCases) {
        const auto [in, out] = forward(k, stream, d);
        const Tensor g = make(in[0].shape(), dtype, stream + 3, d);
        const int64_t affine_size = norm_affine_size(k.affine, k.groups, k.inner, k.channels);
        std::vector<Tensor> grads{empty(in[0].shape(), dtype, d), empty({affine_size}, dtype, d),
                                  empty({affine_size}, dtype, d)};
        run_on<PrimitiveOp::normalize_backward>(
            d, in[0].numel(),
            NormBackwardArgs{dtype, k.outer, k.groups, k.inner, k.affine, g.raw_data(), in[0].raw_data(),
                             out[1].raw_data(), out[3].raw_data(), in[1].defined() ? in[1].raw_data() : nullptr,
                             grads[0].raw_data(), grads[1].raw_data(), grads[2].raw_data(), k.channels});
        for (const Tensor& t : grads) results.push_back(t);
        stream += 4;
      }
      return results;
    });
  }
}

void optimizer_rows(Rows& rows) {
  constexpr int64_t kNumel = 1001;
  for (DType dtype : kFloating) {
    add(rows, PrimitiveOp::sgd_step, dtype, "momentum_nesterov_and_plain_two_steps", Tolerance::Elementwise,
        [dtype](Device d) {
          std::vector<Tensor> out;
          for (bool momentum : {true, false}) {
            Tensor p = make({kNumel}, dtype, 100, d);
            Tensor buf = make({kNumel}, dtype, 101, d);  // overwritten at step 1
            SgdStepArgs a{};
            a.dtype = dtype;
            a.numel = kNumel;
            a.param = p.raw_data();
            a.momentum_buffer = momentum ? buf.raw_data() : nullptr;
            a.lr = 0.1;
            a.h.momentum = momentum ? 0.9 : 0.0;
            a.h.dampening = momentum ? 0.1 : 0.0;
            a.h.weight_decay = 0.01;
            a.h.nesterov = momentum;
            for (int64_t step = 1; step <= 2; ++step) {
              const Tensor grad = make({kNumel}, dtype, 102 + static_cast<uint64_t>(step), d);
              a.grad = grad.raw_data();
              a.step = step;
              run_on<PrimitiveOp::sgd_step>(d, kNumel, a);
            }
            out.push_back(p);
            if (momentum) out.push_back(buf);
          }
          return out;
        });
    add(rows, PrimitiveOp::adam_step, dtype, "adam_and_adamw_three_steps", Tolerance::Elementwise, [dtype](Device d) {
      std::vector<Tensor> out;
      for (bool decoupled : {false, true}) {
        Tensor p = make({kNumel}, dtype, 110, d);
        Tensor m = zeros({kNumel}, dtype).to(d);
        Tensor v = zeros({kNumel}, dtype).to(d);
        AdamStepArgs a{};
        a.dtype = dtype;
        a.numel = kNumel;
        a.param = p.raw_data();
        a.exp_avg = m.raw_data();
        a.exp_avg_sq = v.raw_data();
        a.lr = 1e-2;
        a.h.beta1 = 0.5;
        a.h.beta2 = 0.999;
        a.h.eps = 1e-8;
        a.h.weight_decay = 0.01;
        a.h.decoupled_weight_decay = decoupled;
        for (int64_t step = 1; step <= 3; ++step) {
          const Tensor grad = make({kNumel}, dtype, 111 + static_cast<uint64_t>(step), d);
          a.grad = grad.raw_data();
          a.step = step;
          run_on<PrimitiveOp::adam_step>(d, kNumel, a);
        }
        out.insert(out.end(), {p, m, v});
      }
      return out;
    });
    // 35 tensors (two CUDA launches of up to 32), sizes from 0 to 1001, each at its own step count.
    add(rows, PrimitiveOp::adam_step_multi, dtype, "35_tensors_own_steps_adam_and_adamw", Tolerance::Elementwise,
        [dtype](Device d) {
          std::vector<Tensor> out;
          for (bool decoupled : {false, true}) {
            constexpr int kTensors = 35;
            std::vector<Tensor> p, m, v;
            std::vector<void*> pd, md, vd;
            std::vector<int64_t> numels;
            for (int j = 0; j < kTensors; ++j) {
              const int64_t n = j % 7 == 3 ? 0 : (j * 97) % 1002;
              p.push_back(make({n}, dtype, 120 + static_cast<uint64_t>(j), d));
              m.push_back(zeros({n}, dtype).to(d));
              v.push_back(zeros({n}, dtype).to(d));
              pd.push_back(p.back().raw_data());
              md.push_back(m.back().raw_data());
              vd.push_back(v.back().raw_data());
              numels.push_back(n);
            }
            AdamMultiStepArgs a{};
            a.dtype = dtype;
            a.count = kTensors;
            a.params = pd.data();
            a.exp_avgs = md.data();
            a.exp_avg_sqs = vd.data();
            a.numels = numels.data();
            a.lr = 1e-2;
            a.h.beta1 = 0.5;
            a.h.weight_decay = 0.01;
            a.h.decoupled_weight_decay = decoupled;
            for (int64_t round = 1; round <= 3; ++round) {
              std::vector<Tensor> grads;
              std::vector<const void*> gd;
              std::vector<int64_t> steps;
              int64_t work = 0;
              for (int j = 0; j < kTensors; ++j) {
                grads.push_back(
                    make({numels[static_cast<size_t>(j)]}, dtype, static_cast<uint64_t>(200 + 40 * round + j), d));
                gd.push_back(grads.back().raw_data());
                steps.push_back(round + j % 3);  // tensors at different step counts in one call
                work += numels[static_cast<size_t>(j)];
              }
              a.grads = gd.data();
              a.steps = steps.data();
              run_on<PrimitiveOp::adam_step_multi>(d, work, a);
            }
            for (int j = 0; j < kTensors; ++j) out.insert(out.end(), {p[j], m[j], v[j]});
          }
          return out;
        });
  }
}

Rows build_rows() {
  Rows rows;
  copy_rows(rows);
  cast_rows(rows);
  fill_rows(rows);
  random_rows(rows);
  unary_rows(rows);
  binary_rows(rows);
  compare_rows(rows);
  where_rows(rows);
  activation_backward_rows(rows);
  reduce_rows(rows);
  argmax_rows(rows);
  log_softmax_rows(rows);
  gather_rows(rows);
  scatter_add_rows(rows);
  gemm_rows(rows);
  conv_rows(rows);
  upsample_rows(rows);
  pool_rows(rows);
  norm_rows(rows);
  optimizer_rows(rows);
  return rows;
}

// The larger of two doubles' ulp in `dtype`.
double ulp(double x, DType dtype) {
  if (dtype == f32) {
    const float f = static_cast<float>(std::fabs(x));
    return static_cast<double>(std::nextafter(f, std::numeric_limits<float>::infinity()) - f);
  }
  const double a = std::fabs(x);
  return std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
}

bool same_value(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace

const char* tolerance_name(Tolerance tolerance) {
  switch (tolerance) {
    case Tolerance::Exact: return "exact";
    case Tolerance::Elementwise: return "elementwise 1e-6 (1 + |want|)";
    case Tolerance::Norm: return "relative norm";
    case Tolerance::Ulp12: return "12 ulp";
  }
  return "?";
}

std::string compare(const Tensor& got, const Tensor& want, Tolerance tolerance) {
  std::ostringstream os;
  if (got.shape() != want.shape() || got.dtype() != want.dtype()) {
    os << "got " << got.dtype() << " " << got.shape() << ", want " << want.dtype() << " " << want.shape();
    return os.str();
  }
  const std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  if (tolerance == Tolerance::Norm) {
    const double limit = gemm_parity_tolerance(precision());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) != std::isnan(b[i])) {
        os << "element " << i << ": got " << a[i] << ", want " << b[i];
        return os.str();
      }
      if (std::isnan(b[i])) continue;
      diff += (a[i] - b[i]) * (a[i] - b[i]);
      norm += b[i] * b[i];
    }
    const double relative = norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
    if (!(relative <= limit)) {
      os << "||got - want|| / ||want|| = " << relative << " > " << limit << " over " << a.size() << " elements";
      return os.str();
    }
    return "";
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (same_value(a[i], b[i])) continue;
    const double err = std::fabs(a[i] - b[i]);
    bool ok = false;
    if (tolerance == Tolerance::Elementwise) ok = err <= 1e-6 * (1 + std::fabs(b[i]));
    if (tolerance == Tolerance::Ulp12) ok = err <= 12 * ulp(b[i], want.dtype());
    if (!ok) {
      os.precision(17);
      os << "element " << i << " of " << a.size() << ": got " << a[i] << ", want " << b[i] << " ("
         << tolerance_name(tolerance) << ")";
      return os.str();
    }
  }
  return "";
}

const std::vector<PrimitiveRow>& primitive_rows() {
  static const Rows rows = build_rows();
  return rows;
}

std::string primitive_row_parity(const PrimitiveRow& row, Device ref, Device test) {
  const std::vector<Tensor> want = row.run(ref);
  const std::vector<Tensor> got = row.run(test);
  if (got.size() != want.size() || want.empty()) return "the row returned different numbers of results";
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string message = compare(got[i], want[i], row.tolerance);
    if (!message.empty()) return "result " + std::to_string(i) + ": " + message;
  }
  return "";
}

std::string op_row_parity(const OpCase& c, Device ref, Device test) {
  const std::vector<Tensor> inputs = c.make_inputs();  // float64 CPU leaves (and int64 / bool inputs)
  struct Run {
    Tensor y;
    std::vector<Tensor> grads;
  };
  auto run = [&](Device device) {
    const std::vector<Tensor> moved = inputs_as(inputs, DType::Float32, device);
    Run r;
    r.y = c.fn(moved);
    // L = sum(y * w) with fixed weights in [0.5, 1.5): every output element reaches every gradient.
    const Tensor w = uniform(r.y.shape(), 0.5, 1.5, RandomKey{0x5eed, 8, 0}, DType::Float32).to(device);
    sum(mul(r.y.to(DType::Float32), w)).backward();
    for (const Tensor& t : moved) r.grads.push_back(t.requires_grad() ? t.grad() : Tensor());
    return r;
  };
  const Run want = run(ref), got = run(test);
  // A row mixes maps with reductions and products (a broadcast input's gradient is a sum), so a result passes
  // within the elementwise tolerance or, failing that, the norm tolerance of reductions.
  auto check = [](const Tensor& g, const Tensor& w) {
    const std::string elementwise = compare(g, w, Tolerance::Elementwise);
    if (elementwise.empty()) return elementwise;
    const std::string norm = compare(g, w, Tolerance::Norm);
    return norm.empty() ? norm : elementwise + "; " + norm;
  };
  std::string message = check(got.y, want.y);
  if (!message.empty()) return "output: " + message;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    if (!want.grads[i].defined() || !got.grads[i].defined()) {
      return "no gradient reached input " + std::to_string(i) + " on " + (want.grads[i].defined() ? "test" : "ref");
    }
    message = check(got.grads[i], want.grads[i]);
    if (!message.empty()) return "gradient of input " + std::to_string(i) + ": " + message;
  }
  return "";
}

std::vector<std::string> primitives_without_rows() {
  std::set<std::pair<PrimitiveOp, DType>> covered;
  for (const PrimitiveRow& row : primitive_rows()) covered.insert({row.op, row.dtype});
  const Backend& cpu = backend_for(Device::cpu());
  std::vector<std::string> missing;
  const PrimitiveOp all[] = {
#define X(name, Args) PrimitiveOp::name,
#include "backends/primitives.def"
#undef X
  };
  for (PrimitiveOp op : all) {
    for (DType dtype : kAllDTypes) {
      if (cpu.supports(op, dtype) && covered.count({op, dtype}) == 0) {
        missing.push_back(std::string(primitive_name(op)) + "/" + dtype_name(dtype));
      }
    }
  }
  return missing;
}

}  // namespace atelier::parity
