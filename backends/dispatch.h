// Dtype dispatch for kernels, shared by every backend: a list of element types that is at once the types a
// kernel is compiled for and the support table its backend reports.
//
//   using UnaryTypes = DTypes<float, double>;             // in the backend's kernel header
//   dispatch(UnaryTypes{}, args.dtype, "cpu unary", [&]<class T> { unary_typed<T>(args); });
//   supports(PrimitiveOp::unary, dtype) == UnaryTypes::contains(dtype)
//
// The switch over the dtype runs once per call, never per element: `f` is instantiated once per listed type and
// holds the loops. A dtype outside the list throws atelier::Error naming `what` and the dtype.
#pragma once

#include <cstdint>
#include <string>

#include "backends/dtype.h"
#include "backends/error.h"

namespace atelier {

template <class... Ts>
struct DTypes {
  // An empty list (a primitive a backend does not implement yet) contains nothing.
  static constexpr bool contains([[maybe_unused]] DType dtype) { return ((dtype_of<Ts>() == dtype) || ...); }
};

using FloatingTypes = DTypes<float, double>;
using SignedTypes = DTypes<float, double, int64_t>;  // the types with arithmetic and order (no bool, no uint8)
using AllTypes = DTypes<float, double, int64_t, bool, uint8_t>;

[[noreturn]] inline void unsupported_dtype(const char* what, DType dtype) {
  throw Error(std::string(what) + ": dtype " + dtype_name(dtype) + " is not supported");
}

// Calls f.template operator()<T>() for the T in Ts whose dtype is `dtype`.
template <class... Ts, class F>
void dispatch(DTypes<Ts...>, DType dtype, const char* what, F&& f) {
  const bool found = ((dtype_of<Ts>() == dtype ? (f.template operator()<Ts>(), true) : false) || ...);
  if (!found) unsupported_dtype(what, dtype);
}

// The same with the types spelled at the call: dispatch<float, double>(dtype, "what", f).
template <class... Ts, class F>
void dispatch(DType dtype, const char* what, F&& f) {
  dispatch(DTypes<Ts...>{}, dtype, what, static_cast<F&&>(f));
}

}  // namespace atelier
