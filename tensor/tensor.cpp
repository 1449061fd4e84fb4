#include "tensor/tensor.h"

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"
#include "tensor/readback.h"

namespace atelier {

namespace {
std::atomic<int64_t> g_live_tensor_impls{0};
}

TensorImpl::TensorImpl(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)),
      sizes_(std::move(sizes)),
      strides_(std::move(strides)),
      offset_(offset),
      dtype_(dtype) {
  g_live_tensor_impls.fetch_add(1, std::memory_order_relaxed);
}

TensorImpl::~TensorImpl() { g_live_tensor_impls.fetch_sub(1, std::memory_order_relaxed); }

void TensorImpl::set_data(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype) {
  storage_ = std::move(storage);
  sizes_ = std::move(sizes);
  strides_ = std::move(strides);
  offset_ = offset;
  dtype_ = dtype;
}

void TensorImpl::set_grad_fn(std::shared_ptr<Node> node, int output_nr) {
  grad_fn_ = std::move(node);
  output_nr_ = output_nr;
  requires_grad_ = true;
}

int64_t live_tensor_impls() { return g_live_tensor_impls.load(std::memory_order_relaxed); }

const TensorImpl& Tensor::checked() const {
  ATELIER_CHECK(impl_ != nullptr, "operation on an undefined Tensor (default-constructed or moved-from)");
  return *impl_;
}

const Shape& Tensor::shape() const { return checked().sizes(); }
const Shape& Tensor::strides() const { return checked().strides(); }
int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[normalize_dim(d, dim(), "stride")]; }
int64_t Tensor::offset() const { return checked().offset(); }
DType Tensor::dtype() const { return checked().dtype(); }
Device Tensor::device() const { return checked().storage()->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { return checked().storage(); }

bool Tensor::is_contiguous() const { return make_layout(shape(), strides()).is_contiguous(); }

void* Tensor::raw_data() const {
  const TensorImpl& impl = checked();
  return static_cast<char*>(impl.storage()->data()) + impl.offset() * static_cast<int64_t>(dtype_size(impl.dtype()));
}

template <typename T>
T* Tensor::data_ptr() const {
  ATELIER_CHECK(dtype() == dtype_of<T>(),
                "data_ptr: tensor has dtype " << dtype() << ", requested " << dtype_name(dtype_of<T>()));
  ATELIER_CHECK(device().is_cpu(), "data_ptr: tensor is on " << device() << "; move it to the CPU first");
  return static_cast<T*>(raw_data());
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  if (device().is_cpu()) count_host_sync_read(device());  // from another device, raw::to_device counts it
  Tensor host = raw::contiguous(raw::cast(raw::to_device(*this, Device::cpu()), dtype_of<T>()));
  const T* p = host.data_ptr<T>();
  return std::vector<T>(p, p + host.numel());
}

template <typename T>
T Tensor::item() const {
  ATELIER_CHECK(numel() == 1, "item: tensor of shape " << shape() << " has " << numel() << " elements, not 1");
  return to_vector<T>()[0];
}

#define ATELIER_INSTANTIATE_ACCESS(T)                   \
  template T* Tensor::data_ptr<T>() const;              \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
ATELIER_INSTANTIATE_ACCESS(float)
ATELIER_INSTANTIATE_ACCESS(double)
ATELIER_INSTANTIATE_ACCESS(int64_t)
ATELIER_INSTANTIATE_ACCESS(bool)
ATELIER_INSTANTIATE_ACCESS(uint8_t)
#undef ATELIER_INSTANTIATE_ACCESS

// --- autograd metadata ---

bool Tensor::requires_grad() const { return checked().requires_grad(); }

const Tensor& Tensor::requires_grad_(bool value) const {
  ATELIER_CHECK(!value || is_floating(dtype()),
                "requires_grad_: only float32/float64 tensors can require gradients, this one is " << dtype());
  ATELIER_CHECK(is_leaf() || value,
                "requires_grad_(false) on a non-leaf tensor; use detach() to cut it from the graph");
  impl_->set_requires_grad(value);
  return *this;
}

Tensor Tensor::grad() const { return Tensor(checked().grad()); }

void Tensor::set_grad(const Tensor& grad) const {
  checked();
  // The dtype may differ (the optimisers report it with the tensor's index); the shape may not.
  ATELIER_CHECK(!grad.defined() || grad.shape() == shape(),
                "set_grad: gradient of shape " << grad.shape() << " for a tensor of shape " << shape());
  impl_->set_grad(grad.impl());
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked().grad_fn(); }

Tensor Tensor::detach() const {
  const TensorImpl& impl = checked();
  return Tensor(
      std::make_shared<TensorImpl>(impl.storage(), impl.sizes(), impl.strides(), impl.offset(), impl.dtype()));
}

void Tensor::set_data(const Tensor& src) const {
  checked();
  if (impl_ == src.impl()) return;
  impl_->set_data(src.storage(), src.shape(), src.strides(), src.offset(), src.dtype());
}

// --- non-differentiable queries ---

Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return raw::argmax(*this, dim, keepdim); }

// --- in-place writes ---

namespace {

// In-place ops write through raw kernels, which autograd cannot see: on a tensor that requires grad they would
// silently corrupt the graph, so they are allowed only under NoGradGuard (optimiser updates, initialisation).
void check_inplace(const Tensor& t, const char* op) {
  ATELIER_CHECK(!t.requires_grad() || !grad_mode_enabled(),
                op << ": in-place write to a tensor that requires grad (shape " << t.shape()
                   << "); wrap it in NoGradGuard (as optimisers do) or work on a detach()ed copy");
}

}  // namespace

// The arithmetic ones write into this tensor's own bytes (raw::binary_); `other` broadcasts to its shape.
Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  raw::binary_(BinaryOp::Add, *this, alpha == 1.0 ? other : raw::binary(BinaryOp::Mul, other, alpha));
  return *this;
}

Tensor& Tensor::add_(double value) {
  check_inplace(*this, "add_");
  raw::binary_(BinaryOp::Add, *this, value);
  return *this;
}

Tensor& Tensor::sub_(const Tensor& other) {
  check_inplace(*this, "sub_");
  raw::binary_(BinaryOp::Sub, *this, other);
  return *this;
}

Tensor& Tensor::sub_(double value) {
  check_inplace(*this, "sub_");
  raw::binary_(BinaryOp::Sub, *this, value);
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace(*this, "mul_");
  raw::binary_(BinaryOp::Mul, *this, other);
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_inplace(*this, "mul_");
  raw::binary_(BinaryOp::Mul, *this, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  raw::copy_(*this, src);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  raw::fill_(*this, value);
  return *this;
}

Tensor& Tensor::zero_() {
  check_inplace(*this, "zero_");
  raw::fill_(*this, 0.0);
  return *this;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace atelier
