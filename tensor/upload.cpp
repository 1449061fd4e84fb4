// Host-to-device copies the host does not wait for: UploadPair and TensorUpload (tensor/upload.h).
#include "tensor/upload.h"

#include <cstring>
#include <utility>

#include "backends/error.h"
#include "tensor/creation.h"

namespace atelier {

UploadPair::UploadPair(Device device, size_t bytes, const MakeUpload& make) : device_(device), bytes_(bytes) {
  Backend& backend = backend_for(device);  // throws, naming the device, where it is not there
  for (std::unique_ptr<HostUpload>& copy : copies_) {
    copy = make ? make(bytes) : backend.make_upload(bytes);
    ATELIER_CHECK(copy != nullptr && copy->bytes() == bytes,
                  "UploadPair: a staging buffer of " << bytes << " bytes for " << device << " was asked for, got "
                                                     << (copy == nullptr ? 0 : copy->bytes()));
  }
}

void* UploadPair::staging() {
  // It may wait for an event (a host synchronisation, which would break a stream capture).
  backend_for(device_).refuse_in_capture("an upload's staging buffer (UploadPair::staging)");
  HostUpload& copy = *copies_[starts_ % 2];
  if (!copy.done()) {
    ++stalls_;
    copy.wait();
  }
  return copy.staging();
}

void UploadPair::start(void* device_dst) {
  backend_for(device_).refuse_in_capture("an upload's start (UploadPair::start)");
  copies_[starts_ % 2]->start(device_dst);
  ++starts_;
}

TensorUpload::TensorUpload(Device device, Shape shape, DType dtype, const MakeUpload& make)
    : shape_(std::move(shape)), dtype_(dtype), copies_(device, static_cast<size_t>(shape_bytes(shape_, dtype)), make) {}

Tensor TensorUpload::upload(const Tensor& host) {
  ATELIER_CHECK(host.defined(), "TensorUpload.upload: an undefined tensor, expected " << dtype_ << " " << shape_);
  ATELIER_CHECK(host.device().is_cpu(), "TensorUpload.upload: the tensor (" << host.dtype() << " " << host.shape()
                                                                            << ") is on " << host.device()
                                                                            << "; an upload copies from the cpu");
  ATELIER_CHECK(host.shape() == shape_ && host.dtype() == dtype_,
                "TensorUpload.upload: expected " << dtype_ << " " << shape_ << " (the upload's), got " << host.dtype()
                                                 << " " << host.shape());
  ATELIER_CHECK(host.is_contiguous(), "TensorUpload.upload: the tensor ("
                                          << host.dtype() << " " << host.shape()
                                          << ") is not contiguous; upload contiguous(t), or copy it first");
  backend_for(device()).refuse_in_capture("TensorUpload.upload");
  void* staging = copies_.staging();  // the buffer's last copy has run: its destination may go back, too
  Tensor& destination = destinations_[static_cast<size_t>(copies_.current())];
  destination = empty(shape_, dtype_, device());
  if (copies_.bytes() > 0) std::memcpy(staging, host.raw_data(), copies_.bytes());
  copies_.start(destination.raw_data());
  return destination;
}

}  // namespace atelier
