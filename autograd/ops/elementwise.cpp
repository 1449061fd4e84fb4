// Elementwise differentiable ops: forward (a raw kernel) and backward side by side. Binary ops broadcast, so
// their gradients are summed back to each input's shape with raw::sum_to.
#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// Raw helpers for backward formulas (which run under NoGradGuard, on raw kernels only).
Tensor raw_mul(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::Mul, a, b); }
Tensor raw_div(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::Div, a, b); }
Tensor mask_to(const Tensor& cond, const Tensor& like) { return raw::cast(cond, like.dtype()); }

// The node of an op with a scalar operand (x * 2.0, 1.5 - x ...), `out` computed by a raw scalar op: its one input
// is x, and `grad` maps the output's gradient to x's with raw ops, the scalar captured as a double where the formula
// needs it (g * 2.0). So no 0-d tensor is made, forward or backward: no allocation but the output, no fill launch.
template <class Grad>
Tensor record_scalar_op(const char* name, const Tensor& out, const Tensor& x, Grad grad) {
  if (!should_record({x})) return out;
  return record(name, out, {x}, [grad](const auto& g, const auto&) { return std::vector<Tensor>{grad(g[0])}; });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Add, a, b);
  if (!should_record({a, b})) return out;
  return record("add", out, {a, b}, [as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
    return std::vector<Tensor>{needs[0] ? raw::sum_to(g[0], as) : Tensor(),
                               needs[1] ? raw::sum_to(g[0], bs) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Sub, a, b);
  if (!should_record({a, b})) return out;
  return record("sub", out, {a, b}, [as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
    return std::vector<Tensor>{needs[0] ? raw::sum_to(g[0], as) : Tensor(),
                               needs[1] ? raw::sum_to(raw::unary(UnaryOp::Neg, g[0]), bs) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Mul, a, b);
  if (!should_record({a, b})) return out;
  // Save only what each gradient needs: d/da = g * b, d/db = g * a.
  SavedTensor sa = b.requires_grad() ? SavedTensor(a) : SavedTensor();
  SavedTensor sb = a.requires_grad() ? SavedTensor(b) : SavedTensor();
  return record("mul", out, {a, b}, [sa, sb, as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
    return std::vector<Tensor>{needs[0] ? raw::sum_to(raw_mul(g[0], sb.unpack()), as) : Tensor(),
                               needs[1] ? raw::sum_to(raw_mul(g[0], sa.unpack()), bs) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Div, a, b);
  if (!should_record({a, b})) return out;
  // d/da = g / b; d/db = -g * a / b^2 = -g * out / b.
  SavedTensor sout = b.requires_grad() ? SavedTensor(out) : SavedTensor();
  return record("div", out, {a, b},
                [sb = SavedTensor(b), sout, as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
                  Tensor b_ = sb.unpack();
                  Tensor ga, gb;
                  if (needs[0]) ga = raw::sum_to(raw_div(g[0], b_), as);
                  if (needs[1]) {
                    Tensor t = raw_div(raw_mul(g[0], sout.unpack()), b_);
                    gb = raw::sum_to(raw::unary(UnaryOp::Neg, t), bs);
                  }
                  return std::vector<Tensor>{ga, gb};
                });
}

// The scalar forms: the same values and gradients as the two-tensor ops with a 0-d operand (the scalar converted
// to the tensor's dtype as fill converts), without the 0-d tensor.
Tensor add(const Tensor& a, double b) {
  return record_scalar_op("add", raw::binary(BinaryOp::Add, a, b), a, [](const Tensor& g) { return g; });
}

Tensor sub(const Tensor& a, double b) {
  return record_scalar_op("sub", raw::binary(BinaryOp::Sub, a, b), a, [](const Tensor& g) { return g; });
}

Tensor rsub(double a, const Tensor& b) {
  return record_scalar_op("rsub", raw::binary(BinaryOp::Sub, a, b), b,
                          [](const Tensor& g) { return raw::unary(UnaryOp::Neg, g); });
}

Tensor mul(const Tensor& a, double b) {
  return record_scalar_op("mul", raw::binary(BinaryOp::Mul, a, b), a,
                          [b](const Tensor& g) { return raw::binary(BinaryOp::Mul, g, b); });
}

Tensor div(const Tensor& a, double b) {
  return record_scalar_op("div", raw::binary(BinaryOp::Div, a, b), a,
                          [b](const Tensor& g) { return raw::binary(BinaryOp::Div, g, b); });
}

Tensor rdiv(double a, const Tensor& b) {
  // d(a / b)/db = -a / b^2 = -out / b, as div's gradient for its divisor.
  Tensor out = raw::binary(BinaryOp::Div, a, b);
  return record_scalar_op("rdiv", out, b, [sb = SavedTensor(b), sout = SavedTensor(out)](const Tensor& g) {
    return raw::unary(UnaryOp::Neg, raw_div(raw_mul(g, sout.unpack()), sb.unpack()));
  });
}

Tensor neg(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Neg, x);
  if (!should_record({x})) return out;
  return record("neg", out, {x},
                [](const auto& g, const auto&) { return std::vector<Tensor>{raw::unary(UnaryOp::Neg, g[0])}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Exp, x);
  if (!should_record({x})) return out;
  return record("exp", out, {x}, [so = SavedTensor(out)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw_mul(g[0], so.unpack())};
  });
}

Tensor log(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Log, x);
  if (!should_record({x})) return out;
  return record("log", out, {x}, [sx = SavedTensor(x)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw_div(g[0], sx.unpack())};
  });
}

Tensor abs(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Abs, x);
  if (!should_record({x})) return out;
  return record("abs", out, {x}, [sx = SavedTensor(x)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw_mul(g[0], raw::unary(UnaryOp::Sign, sx.unpack()))};
  });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Sqrt, x);
  if (!should_record({x})) return out;
  // d sqrt(x) = 1 / (2 sqrt(x))
  return record("sqrt", out, {x}, [so = SavedTensor(out)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw_div(raw::binary(BinaryOp::Mul, g[0], 0.5), so.unpack())};
  });
}

Tensor pow(const Tensor& x, double exponent) {
  Tensor out = raw::unary(UnaryOp::Pow, x, exponent);
  if (!should_record({x})) return out;
  // d x^p = p x^(p-1)
  return record("pow", out, {x}, [sx = SavedTensor(x), exponent](const auto& g, const auto&) {
    Tensor d = raw::binary(BinaryOp::Mul, raw::unary(UnaryOp::Pow, sx.unpack(), exponent - 1), exponent);
    return std::vector<Tensor>{raw_mul(g[0], d)};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Tanh, x);
  if (!should_record({x})) return out;
  // d tanh = 1 - tanh^2, one kernel from the output (raw::activation_backward; three maps before).
  return record("tanh", out, {x}, [so = SavedTensor(out)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(UnaryOp::Tanh, g[0], so.unpack())};
  });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Sigmoid, x);
  if (!should_record({x})) return out;
  // d sigmoid = s (1 - s), one kernel from the output (three maps before).
  return record("sigmoid", out, {x}, [so = SavedTensor(out)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(UnaryOp::Sigmoid, g[0], so.unpack())};
  });
}

Tensor relu(const Tensor& x) {
  Tensor out = raw::unary(UnaryOp::Relu, x);
  if (!should_record({x})) return out;
  // g * (y > 0), one kernel from the output (a compare, a cast and a mul before).
  return record("relu", out, {x}, [so = SavedTensor(out)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(UnaryOp::Relu, g[0], so.unpack())};
  });
}

Tensor elu(const Tensor& x, double alpha) {
  Tensor out = raw::unary(UnaryOp::Elu, x, alpha);
  if (!should_record({x})) return out;
  // x > 0: 1; otherwise alpha e^x = y + alpha. One kernel that reads the output only, so x is not kept. The sign
  // of y is the sign of x only for alpha >= 0 (PyTorch's output-based ELU gradient has the same limit).
  ATELIER_CHECK(alpha >= 0, "elu: alpha " << alpha << " is negative; its gradient from the output needs alpha >= 0 ("
                                          << x.shape() << ")");
  return record("elu", out, {x}, [so = SavedTensor(out), alpha](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(UnaryOp::Elu, g[0], so.unpack(), alpha)};
  });
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  ATELIER_CHECK(beta > 0, "softplus: beta must be positive, got " << beta << " (input " << x.shape() << ")");
  Tensor out = raw::unary(UnaryOp::Softplus, x, beta, threshold);
  if (!should_record({x})) return out;
  // g sigmoid(beta x), g where beta x > threshold (where the output is x itself): one kernel, from the input.
  return record("softplus", out, {x}, [sx = SavedTensor(x), beta, threshold](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(UnaryOp::Softplus, g[0], sx.unpack(), beta, threshold)};
  });
}

namespace {

// maximum and minimum: the gradient goes to the operand that wins, half to each where they are equal, and none
// to the one that loses (PyTorch's rule: a NaN in either gives both operands the whole gradient).
Tensor extremum(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(op, a, b);
  if (!should_record({a, b})) return out;
  const CompareOp loses = op == BinaryOp::Maximum ? CompareOp::Lt : CompareOp::Gt;
  return record(name, out, {a, b},
                [sa = SavedTensor(a), sb = SavedTensor(b), loses, as = a.shape(), bs = b.shape()](const auto& g,
                                                                                                  const auto& needs) {
                  const Tensor a_ = sa.unpack(), b_ = sb.unpack();
                  const Tensor shared =
                      raw::where(raw::compare(CompareOp::Eq, a_, b_), raw::binary(BinaryOp::Mul, g[0], 0.5), g[0]);
                  return std::vector<Tensor>{
                      needs[0] ? raw::sum_to(raw::where(raw::compare(loses, a_, b_), 0.0, shared), as) : Tensor(),
                      needs[1] ? raw::sum_to(raw::where(raw::compare(loses, b_, a_), 0.0, shared), bs) : Tensor()};
                });
}

// The activations whose gradient reads their input: one kernel each way (backends/args.h gives each derivative).
Tensor activation_from_input(const char* name, UnaryOp op, const Tensor& x, double p0) {
  Tensor out = raw::unary(op, x, p0);
  if (!should_record({x})) return out;
  return record(name, out, {x}, [sx = SavedTensor(x), op, p0](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::activation_backward(op, g[0], sx.unpack(), p0)};
  });
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum("maximum", BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum("minimum", BinaryOp::Minimum, a, b); }

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return activation_from_input("leaky_relu", UnaryOp::LeakyRelu, x, negative_slope);
}

Tensor silu(const Tensor& x) { return activation_from_input("silu", UnaryOp::Silu, x, 0.0); }

Tensor gelu(const Tensor& x, GeluApproximate approximate) {
  return approximate == GeluApproximate::Tanh ? activation_from_input("gelu", UnaryOp::GeluTanh, x, 0.0)
                                              : activation_from_input("gelu", UnaryOp::Gelu, x, 0.0);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  ATELIER_CHECK(lo <= hi, "clamp: lo " << lo << " is greater than hi " << hi);
  Tensor out = raw::unary(UnaryOp::Clamp, x, lo, hi);
  if (!should_record({x})) return out;
  // The gradient passes where lo <= x <= hi (PyTorch's convention at the bounds).
  return record("clamp", out, {x}, [sx = SavedTensor(x), lo, hi](const auto& g, const auto&) {
    Tensor x_ = sx.unpack();
    Tensor inside =
        raw_mul(mask_to(raw::compare(CompareOp::Ge, x_, lo), x_), mask_to(raw::compare(CompareOp::Le, x_, hi), x_));
    return std::vector<Tensor>{raw_mul(g[0], inside)};
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = raw::where(cond, a, b);
  if (!should_record({a, b})) return out;
  return record("where", out, {a, b},
                [sc = SavedTensor(cond), as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
                  Tensor c = sc.unpack();
                  return std::vector<Tensor>{needs[0] ? raw::sum_to(raw::where(c, g[0], 0.0), as) : Tensor(),
                                             needs[1] ? raw::sum_to(raw::where(c, 0.0, g[0]), bs) : Tensor()};
                });
}

}  // namespace atelier
