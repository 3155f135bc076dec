// JavaScript values <-> the torch runtime's host structs, shared by the LibTorch bindings: numbers
// and strings of option objects, { data, shape, dtype } tensors in and out. Compiled only with
// LibTorch (SDVP_HAVE_TORCH).
#pragma once

#ifdef SDVP_HAVE_TORCH

#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "torch/torch_runtime.h"

namespace sdvp::addon {

// A number field; ERR_SDVP_ARG when it is not one.
double NumberOf(Napi::Object object, const char* field);
// A number field, or nullopt when undefined or null.
std::optional<double> OptionalNumberOf(Napi::Object object, const char* field);
std::string StringOf(Napi::Value value, const char* what);
// An array of strings (empty when undefined or null).
std::vector<std::string> StringsOf(Napi::Value value, const char* what);

// The element type a typed array carries (a Uint8Array is bool when `dtype` says so).
torch_runtime::ElementType ElementTypeOf(Napi::TypedArray array, const std::string& dtype);
// Copies a typed array into a host tensor of `shape` (a snapshot: JavaScript may reuse its buffer).
torch_runtime::HostTensor CopyTensor(Napi::TypedArray array, std::vector<int64_t> shape,
                                     const std::string& dtype = "");
// { data, shape, dtype? } -> HostTensor (a copy).
torch_runtime::HostTensor ReadTensor(Napi::Value value, const std::string& what);
// An array of tensors.
std::vector<torch_runtime::HostTensor> ReadTensors(Napi::Value value);

// HostTensor -> { data, shape, dtype } (a copy).
Napi::Value TensorValue(Napi::Env env, const torch_runtime::HostTensor& tensor);

}  // namespace sdvp::addon

#endif  // SDVP_HAVE_TORCH
