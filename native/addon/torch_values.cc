// JavaScript values <-> the torch runtime's host structs (see torch_values.h).
#ifdef SDVP_HAVE_TORCH

#include "torch_values.h"

#include <cstring>
#include <memory>
#include <utility>

#include "errors.h"

namespace sdvp::addon {

namespace rt = sdvp::torch_runtime;

double NumberOf(Napi::Object object, const char* field) {
  Napi::Value value = object.Get(field);
  if (!value.IsNumber()) throw CodedError("ERR_SDVP_ARG", std::string(field) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

std::optional<double> OptionalNumberOf(Napi::Object object, const char* field) {
  Napi::Value value = object.Get(field);
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  if (!value.IsNumber()) throw CodedError("ERR_SDVP_ARG", std::string(field) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

std::string StringOf(Napi::Value value, const char* what) {
  if (!value.IsString()) throw CodedError("ERR_SDVP_ARG", std::string(what) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<std::string> StringsOf(Napi::Value value, const char* what) {
  std::vector<std::string> out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsArray())
    throw CodedError("ERR_SDVP_ARG", std::string(what) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(StringOf(array.Get(i), what));
  return out;
}

// The element type a typed array carries (Uint8Array is bool when `dtype` says so).
rt::ElementType ElementTypeOf(Napi::TypedArray array, const std::string& dtype) {
  switch (array.TypedArrayType()) {
    case napi_float32_array:
      return rt::ElementType::kFloat32;
    case napi_int32_array:
      return rt::ElementType::kInt32;
    case napi_bigint64_array:
      return rt::ElementType::kInt64;
    case napi_uint8_array:
      return dtype == "bool" ? rt::ElementType::kBool : rt::ElementType::kUInt8;
    case napi_uint16_array:
      return rt::ElementType::kBFloat16;
    default:
      throw CodedError("ERR_SDVP_ARG",
                       "tensor data must be a Float32Array, Int32Array, BigInt64Array, Uint8Array "
                       "or Uint16Array");
  }
}

// Copies a typed array into a host tensor of `shape` (a snapshot: JavaScript may reuse its buffer).
rt::HostTensor CopyTensor(Napi::TypedArray array, std::vector<int64_t> shape,
                          const std::string& dtype) {
  rt::HostTensor host;
  host.type = ElementTypeOf(array, dtype);
  host.shape = std::move(shape);
  const size_t bytes = array.ByteLength();
  if (static_cast<size_t>(host.numel()) * rt::element_size(host.type) != bytes) {
    throw CodedError(
        "ERR_SDVP_SHAPE",
        "tensor data has " + std::to_string(bytes) + " bytes, but shape needs " +
            std::to_string(host.numel() * static_cast<int64_t>(rt::element_size(host.type))));
  }
  host.bytes = std::make_shared<std::vector<uint8_t>>(bytes);
  if (bytes > 0) {
    const uint8_t* data =
        static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    std::memcpy(host.bytes->data(), data, bytes);
  }
  return host;
}

// { data, shape, dtype? } -> HostTensor.
rt::HostTensor ReadTensor(Napi::Value value, const std::string& what) {
  if (!value.IsObject()) throw CodedError("ERR_SDVP_ARG", what + " must be a tensor object");
  Napi::Object object = value.As<Napi::Object>();
  Napi::Value data = object.Get("data");
  Napi::Value shape_value = object.Get("shape");
  if (!data.IsTypedArray()) throw CodedError("ERR_SDVP_ARG", what + ".data must be a typed array");
  if (!shape_value.IsArray()) throw CodedError("ERR_SDVP_ARG", what + ".shape must be an array");
  Napi::Array shape_array = shape_value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < shape_array.Length(); ++i) {
    Napi::Value extent = shape_array.Get(i);
    if (!extent.IsNumber()) throw CodedError("ERR_SDVP_ARG", what + ".shape must hold numbers");
    shape.push_back(extent.As<Napi::Number>().Int64Value());
  }
  Napi::Value dtype = object.Get("dtype");
  return CopyTensor(data.As<Napi::TypedArray>(), std::move(shape),
                    dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : "");
}

std::vector<rt::HostTensor> ReadTensors(Napi::Value value) {
  if (!value.IsArray()) throw CodedError("ERR_SDVP_ARG", "inputs must be an array of tensors");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<rt::HostTensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i)
    out.push_back(ReadTensor(array.Get(i), "inputs[" + std::to_string(i) + "]"));
  return out;
}

Napi::Value TensorValue(Napi::Env env, const rt::HostTensor& tensor) {
  const size_t bytes = tensor.bytes ? tensor.bytes->size() : 0;
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buffer.Data(), tensor.bytes->data(), bytes);
  const size_t count = static_cast<size_t>(tensor.numel());
  Napi::Value data;
  switch (tensor.type) {
    case rt::ElementType::kFloat32:
      data = Napi::Float32Array::New(env, count, buffer, 0);
      break;
    case rt::ElementType::kInt32:
      data = Napi::Int32Array::New(env, count, buffer, 0);
      break;
    case rt::ElementType::kInt64:
      data = Napi::TypedArrayOf<int64_t>::New(env, count, buffer, 0, napi_bigint64_array);
      break;
    case rt::ElementType::kUInt8:
    case rt::ElementType::kBool:
      data = Napi::Uint8Array::New(env, count, buffer, 0);
      break;
    case rt::ElementType::kBFloat16:
      data = Napi::Uint16Array::New(env, count, buffer, 0);
      break;
  }
  Napi::Array shape = Napi::Array::New(env, tensor.shape.size());
  for (size_t i = 0; i < tensor.shape.size(); ++i)
    shape.Set(static_cast<uint32_t>(i), static_cast<double>(tensor.shape[i]));
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("shape", shape);
  out.Set("dtype", rt::element_type_name(tensor.type));
  return out;
}

}  // namespace sdvp::addon

#endif  // SDVP_HAVE_TORCH
