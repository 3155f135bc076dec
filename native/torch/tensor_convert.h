// Conversions between the JS-neutral HostTensor/HostValue structs and LibTorch tensors and IValues.
#pragma once

#include <ATen/core/ivalue.h>
#include <ATen/ATen.h>

#include <string>

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

c10::ScalarType to_scalar_type(ElementType type);

// A CPU tensor over the host bytes (shared ownership, no copy), moved to `device` (a copy when it
// is not the CPU). Int32 data stay int32; the caller widens where it wants longs.
at::Tensor to_tensor(const HostTensor& host, const c10::Device& device);

// A method input: like to_tensor, with int32 data widened to int64 (what TorchScript index ops
// want).
at::Tensor to_input_tensor(const HostTensor& host, const c10::Device& device);

// Copies a tensor to host memory: detached, on the CPU, contiguous. float16/bfloat16/float64 become
// float32; int8/int16 become int32; bool stays bool (one byte per element).
HostTensor to_host(const at::Tensor& tensor);

// Converts a method's return value; throws RuntimeError(ERR_SDVP_TORCH) for types it cannot carry.
HostValue to_host_value(const c10::IValue& value);

// Copies a tensor's values into a std::vector<T> (after converting to T's scalar type on the CPU).
template <typename T>
std::vector<T> to_vector(const at::Tensor& tensor) {
  at::Tensor host = tensor.detach().to(at::kCPU, c10::CppTypeToScalarType<T>::value).contiguous();
  const T* data = host.data_ptr<T>();
  return std::vector<T>(data, data + host.numel());
}

// "[2, 3, 32, 32]"
std::string shape_string(c10::IntArrayRef shape);

}  // namespace sdvp::torch_runtime
