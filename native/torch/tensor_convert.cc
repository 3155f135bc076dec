// Converts between the runtime's host structs and LibTorch tensors/IValues, with shared ownership
// of host bytes so no tensor ever points at freed memory.
#include "tensor_convert.h"

#include <cstring>
#include <sstream>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
    case ElementType::kInt32:
      return 4;
    case ElementType::kInt64:
      return 8;
    case ElementType::kUInt8:
    case ElementType::kBool:
      return 1;
    case ElementType::kBFloat16:
      return 2;
  }
  return 1;
}

const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kInt32:
      return "int32";
    case ElementType::kInt64:
      return "int64";
    case ElementType::kUInt8:
      return "uint8";
    case ElementType::kBool:
      return "bool";
    case ElementType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

int64_t HostTensor::numel() const {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

c10::ScalarType to_scalar_type(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return at::kFloat;
    case ElementType::kInt32:
      return at::kInt;
    case ElementType::kInt64:
      return at::kLong;
    case ElementType::kUInt8:
      return at::kByte;
    case ElementType::kBool:
      return at::kBool;
    case ElementType::kBFloat16:
      return at::kBFloat16;
  }
  return at::kFloat;
}

std::string shape_string(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

at::Tensor to_tensor(const HostTensor& host, const c10::Device& device) {
  if (!host.present()) throw RuntimeError("ERR_SDVP_ARG", "a tensor has no data");
  for (int64_t extent : host.shape) {
    if (extent < 0) throw RuntimeError("ERR_SDVP_SHAPE", "a tensor has a negative dimension");
  }
  const size_t expected = static_cast<size_t>(host.numel()) * element_size(host.type);
  if (host.bytes->size() != expected) {
    throw RuntimeError("ERR_SDVP_SHAPE", "a tensor of shape " + shape_string(host.shape) +
                                             " needs " + std::to_string(expected) + " bytes of " +
                                             element_type_name(host.type) + " data, got " +
                                             std::to_string(host.bytes->size()));
  }
  // The deleter keeps the bytes alive for as long as the tensor (or a view of it) lives.
  auto keep = host.bytes;
  void* data = host.bytes->empty() ? nullptr : host.bytes->data();
  at::Tensor tensor = at::from_blob(
      data, host.shape, [keep](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(to_scalar_type(host.type)).device(at::kCPU));
  if (device.is_cpu()) return tensor;
  return tensor.to(device);
}

at::Tensor to_input_tensor(const HostTensor& host, const c10::Device& device) {
  at::Tensor tensor = to_tensor(host, device);
  if (tensor.scalar_type() == at::kInt) tensor = tensor.to(at::kLong);
  return tensor;
}

HostTensor to_host(const at::Tensor& input) {
  at::Tensor tensor = input.detach();
  if (tensor.is_sparse()) tensor = tensor.to_dense();
  ElementType type;
  switch (tensor.scalar_type()) {
    case at::kFloat:
    case at::kDouble:
    case at::kHalf:
    case at::kBFloat16:
      type = ElementType::kFloat32;
      break;
    case at::kInt:
    case at::kShort:
    case at::kChar:
      type = ElementType::kInt32;
      break;
    case at::kLong:
      type = ElementType::kInt64;
      break;
    case at::kByte:
      type = ElementType::kUInt8;
      break;
    case at::kBool:
      type = ElementType::kBool;
      break;
    default:
      throw RuntimeError("ERR_SDVP_TORCH", std::string("a method returned a tensor of type ") +
                                               c10::toString(tensor.scalar_type()) +
                                               ", which has no JavaScript typed array");
  }
  tensor = tensor.to(at::kCPU, to_scalar_type(type)).contiguous();
  HostTensor host;
  host.type = type;
  host.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
  const size_t bytes = static_cast<size_t>(tensor.numel()) * element_size(type);
  host.bytes = std::make_shared<std::vector<uint8_t>>(bytes);
  if (bytes > 0) std::memcpy(host.bytes->data(), tensor.data_ptr(), bytes);
  return host;
}

HostValue to_host_value(const c10::IValue& value) {
  HostValue out;
  if (value.isNone()) {
    out.kind = HostValue::Kind::kNone;
  } else if (value.isTensor()) {
    out.kind = HostValue::Kind::kTensor;
    out.tensor = to_host(value.toTensor());
  } else if (value.isTuple()) {
    out.kind = HostValue::Kind::kList;
    for (const auto& element : value.toTupleRef().elements())
      out.items.push_back(to_host_value(element));
  } else if (value.isList()) {
    out.kind = HostValue::Kind::kList;
    for (const c10::IValue& element : value.toListRef())
      out.items.push_back(to_host_value(element));
  } else if (value.isGenericDict()) {
    out.kind = HostValue::Kind::kDict;
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString()) {
        throw RuntimeError("ERR_SDVP_TORCH", "a method returned a dict whose keys are not strings");
      }
      out.keys.push_back(entry.key().toStringRef());
      out.items.push_back(to_host_value(entry.value()));
    }
  } else if (value.isBool()) {
    out.kind = HostValue::Kind::kBool;
    out.boolean = value.toBool();
  } else if (value.isInt()) {
    out.kind = HostValue::Kind::kInt;
    out.integer = value.toInt();
  } else if (value.isDouble()) {
    out.kind = HostValue::Kind::kDouble;
    out.number = value.toDouble();
  } else if (value.isString()) {
    out.kind = HostValue::Kind::kString;
    out.text = value.toStringRef();
  } else {
    throw RuntimeError("ERR_SDVP_TORCH", "a method returned a value of type " + value.tagKind() +
                                             ", which sdvp cannot convert");
  }
  return out;
}

}  // namespace sdvp::torch_runtime
