// Model: loading, creating, describing, running (without autograd) and saving TorchScript modules,
// with every LibTorch failure turned into a coded RuntimeError.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <c10/core/GradMode.h>
#include <torch/cuda.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "builtin_architectures.h"
#include "checkpoint.h"
#include "model_impl.h"
#include "name_patterns.h"
#include "runtime_error.h"
#include "runtime_settings.h"
#include "tensor_convert.h"

namespace sdvp::torch_runtime {

namespace {

std::string errno_text() { return std::strerror(errno); }

// "images: Tensor"
std::string describe_argument(const c10::Argument& argument) {
  return argument.name() + ": " + argument.type()->annotation_str();
}

MethodInfo describe_method(const torch::jit::Method& method) {
  MethodInfo info;
  info.name = method.name();
  const c10::FunctionSchema& schema = method.function().getSchema();
  const auto& arguments = schema.arguments();
  for (size_t i = 1; i < arguments.size(); ++i)
    info.arguments.push_back(describe_argument(arguments[i]));
  if (schema.returns().size() == 1) {
    info.returns = schema.returns()[0].type()->annotation_str();
  } else {
    std::string joined;
    for (const auto& ret : schema.returns())
      joined += (joined.empty() ? "" : ", ") + ret.type()->annotation_str();
    info.returns = "(" + joined + ")";
  }
  std::ostringstream schema_text;
  schema_text << schema;
  info.schema = schema_text.str();
  return info;
}

// Checks the inputs against the method's schema: how many, and that each slot takes a tensor.
void check_arguments(const torch::jit::Method& method, size_t count) {
  const auto& arguments = method.function().getSchema().arguments();
  size_t required = 0;
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (!arguments[i].default_value()) ++required;
  }
  const size_t total = arguments.size() - 1;
  if (count < required || count > total) {
    std::string list;
    for (size_t i = 1; i < arguments.size(); ++i)
      list += (list.empty() ? "" : ", ") + describe_argument(arguments[i]);
    throw RuntimeError(
        "ERR_SDVP_ARG",
        "method '" + method.name() + "' takes " +
            (required == total ? std::to_string(total)
                               : std::to_string(required) + " to " + std::to_string(total)) +
            " input(s) (" + list + "), but " + std::to_string(count) + " were given");
  }
  for (size_t i = 0; i < count; ++i) {
    const c10::TypePtr& type = arguments[i + 1].type();
    if (!c10::TensorType::get()->isSubtypeOf(*type)) {
      throw RuntimeError("ERR_SDVP_ARG", "input " + std::to_string(i) + " of method '" +
                                             method.name() + "' is " +
                                             describe_argument(arguments[i + 1]) +
                                             ", which a tensor cannot be passed as");
    }
  }
}

// Concatenates per-chunk outputs along dimension 0, recursively through tuples and lists.
c10::IValue concat_outputs(const std::vector<c10::IValue>& parts) {
  const c10::IValue& first = parts.front();
  if (parts.size() == 1) return first;
  if (first.isTensor()) {
    std::vector<at::Tensor> tensors;
    for (const auto& part : parts) {
      if (!part.isTensor() || part.toTensor().dim() == 0) {
        throw RuntimeError("ERR_SDVP_ARG",
                           "batchSize needs a method whose outputs are batched along dimension 0");
      }
      tensors.push_back(part.toTensor());
    }
    return at::cat(tensors, 0);
  }
  if (first.isTuple() || first.isList()) {
    auto elements_of = [](const c10::IValue& v) {
      if (v.isTuple()) return v.toTupleRef().elements().vec();
      return v.toListRef().vec();
    };
    const size_t count = elements_of(first).size();
    std::vector<c10::IValue> combined;
    for (size_t i = 0; i < count; ++i) {
      std::vector<c10::IValue> column;
      for (const auto& part : parts) {
        auto elements = elements_of(part);
        if (elements.size() != count)
          throw RuntimeError("ERR_SDVP_ARG", "chunk outputs differ in structure");
        column.push_back(elements[i]);
      }
      combined.push_back(concat_outputs(column));
    }
    return c10::ivalue::Tuple::create(std::move(combined));
  }
  throw RuntimeError("ERR_SDVP_ARG",
                     "batchSize needs a method that returns tensors (or tuples of them)");
}

std::unique_ptr<Model::Impl> new_impl(torch::jit::Module module, const c10::Device& device) {
  auto impl = std::make_unique<Model::Impl>();
  impl->module = std::move(module);
  impl->device = device;
  return impl;
}

}  // namespace

torch::jit::Method find_method(const torch::jit::Module& module, const std::string& name) {
  if (auto method = module.find_method(name)) return *method;
  std::string names;
  for (const auto& method : module.get_methods())
    names += (names.empty() ? "" : ", ") + method.name();
  throw RuntimeError("ERR_SDVP_MODEL_METHOD", "the module has no method '" + name + "' (it has: " +
                                                  (names.empty() ? "none" : names) + ")");
}

c10::Device parse_device(const std::string& device) {
  c10::Device parsed(at::kCPU);
  try {
    parsed = c10::Device(device);
  } catch (const std::exception&) {
    throw RuntimeError("ERR_SDVP_ARG",
                       "device must be 'cpu', 'cuda' or 'cuda:N', but received '" + device + "'");
  }
  if (parsed.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw RuntimeError("ERR_SDVP_NO_CUDA",
                         "device '" + device +
                             "' was asked for, but LibTorch sees no CUDA device "
                             "(a CPU-only LibTorch, or no GPU)");
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (parsed.has_index() && parsed.index() >= count) {
      throw RuntimeError("ERR_SDVP_ARG", "device '" + device + "' does not exist (" +
                                             std::to_string(count) + " CUDA device(s))");
    }
    if (!parsed.has_index()) parsed = c10::Device(at::kCUDA, 0);
  } else if (!parsed.is_cpu()) {
    throw RuntimeError("ERR_SDVP_ARG",
                       "device must be 'cpu', 'cuda' or 'cuda:N', but received '" + device + "'");
  }
  return parsed;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw RuntimeError("ERR_SDVP_MODEL_FILE",
                       "cannot open model file '" + path + "': " + errno_text());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw RuntimeError("ERR_SDVP_MODEL_FILE", "cannot read model file '" + path + "'");
  return bytes.str();
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::string temporary =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw RuntimeError("ERR_SDVP_IO", "cannot create '" + temporary + "': " + errno_text());
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = errno_text();
      ::close(fd);
      ::unlink(temporary.c_str());
      throw RuntimeError("ERR_SDVP_IO", "cannot write '" + temporary + "': " + reason);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(temporary.c_str());
    throw RuntimeError("ERR_SDVP_IO", "cannot sync '" + temporary + "': " + reason);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(temporary.c_str());
    throw RuntimeError("ERR_SDVP_IO",
                       "cannot rename '" + temporary + "' to '" + path + "': " + reason);
  }
  // Make the rename itself durable.
  const size_t slash = path.find_last_of('/');
  const std::string folder =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::unique_ptr<Model::Impl> load_impl(const std::string& bytes, const c10::Device& device,
                                       const std::string& what) {
  torch::jit::ExtraFilesMap extra{{kTrainerStateFile, ""}};
  torch::jit::Module module =
      translate_errors("ERR_SDVP_MODEL_FILE", "cannot load " + what + " as TorchScript", [&] {
        std::istringstream in(bytes);
        return torch::jit::load(in, device, extra);
      });
  auto impl = new_impl(std::move(module), device);
  const std::string& state = extra[kTrainerStateFile];
  if (!state.empty()) decode_training_state(*impl, state);
  impl->refresh_metadata();
  return impl;
}

NamedTensors Model::Impl::named_parameters() const {
  NamedTensors out;
  for (const auto& named : module.named_parameters(/*recurse=*/true))
    out.emplace_back(named.name, named.value);
  return out;
}

void Model::Impl::refresh_metadata() {
  std::vector<ParameterInfo> parameters;
  for (const auto& [name, param] : named_parameters()) {
    ParameterInfo info;
    info.name = name;
    info.shape.assign(param.sizes().begin(), param.sizes().end());
    info.dtype = c10::toString(param.scalar_type());
    info.trainable = param.requires_grad();
    parameters.push_back(std::move(info));
  }
  std::vector<MethodInfo> methods;
  for (const auto& method : module.get_methods()) methods.push_back(describe_method(method));
  std::vector<std::pair<std::string, HostValue>> attributes;
  const c10::ClassTypePtr type = module.type();
  for (size_t slot = 0; slot < type->numAttributes(); ++slot) {
    const std::string name = type->getAttributeName(slot);
    if (name == "training" || type->is_parameter(slot) || type->is_buffer(slot) ||
        type->getAttribute(slot)->cast<c10::ClassType>()) {
      continue;
    }
    try {
      attributes.emplace_back(name, to_host_value(module.attr(name)));
    } catch (const std::exception&) {
      // An attribute of a type JavaScript cannot hold (an object, a tensor list...) is not
      // described.
    }
  }
  training_mode = -1;  // a new module (load, checkpoint) is in whatever mode it was saved in
  std::lock_guard<std::mutex> lock(meta_mutex);
  ++trainable_generation;
  parameter_info = std::move(parameters);
  method_info = std::move(methods);
  attribute_values = std::move(attributes);
  optimizer_config = optimizer ? std::optional<OptimizerConfig>(optimizer->config()) : std::nullopt;
}

void Model::Impl::apply_trainable() {
  std::vector<ParameterInfo> info;
  {
    std::lock_guard<std::mutex> lock(meta_mutex);
    if (trainable_applied == trainable_generation) return;
    info = parameter_info;
    trainable_applied = trainable_generation;
  }
  const NamedTensors parameters = named_parameters();
  for (size_t i = 0; i < parameters.size() && i < info.size(); ++i) {
    const at::Tensor& param = parameters[i].second;
    if (parameters[i].first == info[i].name && param.requires_grad() != info[i].trainable) {
      param.requires_grad_(info[i].trainable);
    }
  }
}

void Model::Impl::set_training(bool on) {
  if (training_mode == (on ? 1 : 0)) return;
  module.train(on);
  training_mode = on ? 1 : 0;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<Model> Model::load_file(const std::string& path, const std::string& device) {
  tune_allocator_once();
  const c10::Device parsed = parse_device(device);
  const std::string bytes = read_file(path);
  return std::shared_ptr<Model>(new Model(load_impl(bytes, parsed, "'" + path + "'")));
}

std::shared_ptr<Model> Model::load_bytes(const std::vector<uint8_t>& bytes,
                                         const std::string& device) {
  tune_allocator_once();
  const c10::Device parsed = parse_device(device);
  return std::shared_ptr<Model>(
      new Model(load_impl(std::string(bytes.begin(), bytes.end()), parsed, "the buffer")));
}

std::shared_ptr<Model> Model::create(const ArchitectureConfig& config, const std::string& device) {
  tune_allocator_once();
  const c10::Device parsed = parse_device(device);
  torch::jit::Module module =
      translate_errors("ERR_SDVP_TORCH", "creating '" + config.architecture + "' failed", [&] {
        torch::jit::Module built = build_architecture(config);
        built.to(parsed);
        return built;
      });
  auto impl = new_impl(std::move(module), parsed);
  impl->refresh_metadata();
  return std::shared_ptr<Model>(new Model(std::move(impl)));
}

HostValue Model::call(const std::string& method_name, const std::vector<HostTensor>& inputs,
                      int64_t batch_size, const volatile int32_t* cancel) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  apply_thread_settings();
  return translate_errors("ERR_SDVP_TORCH", "method '" + method_name + "' failed", [&] {
    torch::jit::Method method = find_method(impl_->module, method_name);
    check_arguments(method, inputs.size());
    std::vector<at::Tensor> tensors;
    for (const HostTensor& input : inputs) tensors.push_back(to_input_tensor(input, impl_->device));
    const c10::NoGradGuard no_grad;
    impl_->set_training(false);
    int64_t rows = -1;
    if (batch_size > 0) {
      for (const at::Tensor& tensor : tensors) {
        if (tensor.dim() == 0 || (rows >= 0 && tensor.size(0) != rows)) {
          throw RuntimeError("ERR_SDVP_SHAPE",
                             "batchSize needs every input to share its first dimension");
        }
        rows = tensor.size(0);
      }
    }
    if (batch_size <= 0 || rows <= batch_size) {
      if (cancel && *cancel) throw RuntimeError("ERR_SDVP_ABORTED", "the call was aborted");
      return to_host_value(method(std::vector<c10::IValue>(tensors.begin(), tensors.end())));
    }
    std::vector<c10::IValue> parts;
    for (int64_t begin = 0; begin < rows; begin += batch_size) {
      if (cancel && *cancel) throw RuntimeError("ERR_SDVP_ABORTED", "the call was aborted");
      const int64_t length = std::min(batch_size, rows - begin);
      std::vector<c10::IValue> chunk;
      for (const at::Tensor& tensor : tensors) chunk.emplace_back(tensor.narrow(0, begin, length));
      parts.push_back(method(std::move(chunk)));
    }
    return to_host_value(concat_outputs(parts));
  });
}

void Model::save(const std::string& path) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  write_file_atomically(path, serialize_model(*impl_, /*with_training_state=*/false));
}

void Model::save_checkpoint(const std::string& path) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  write_file_atomically(path, serialize_model(*impl_, /*with_training_state=*/true));
}

void Model::load_checkpoint(const std::string& path) {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  // Everything is read into a new state first; the live model changes only once that succeeded.
  std::unique_ptr<Impl> loaded =
      load_impl(read_file(path), impl_->device, "checkpoint '" + path + "'");
  const NamedTensors old_parameters = impl_->named_parameters();
  const NamedTensors new_parameters = loaded->named_parameters();
  if (old_parameters.size() != new_parameters.size()) {
    throw RuntimeError("ERR_SDVP_MODEL_FILE",
                       "checkpoint '" + path + "' holds a model with other parameters");
  }
  for (size_t i = 0; i < old_parameters.size(); ++i) {
    if (old_parameters[i].first != new_parameters[i].first ||
        !old_parameters[i].second.sizes().equals(new_parameters[i].second.sizes())) {
      throw RuntimeError("ERR_SDVP_MODEL_FILE", "checkpoint '" + path +
                                                    "' does not fit this model: parameter '" +
                                                    new_parameters[i].first + "' differs");
    }
  }
  impl_->module = std::move(loaded->module);
  impl_->optimizer = std::move(loaded->optimizer);
  {
    std::lock_guard<std::mutex> lock(impl_->meta_mutex);
    impl_->step = loaded->step;
  }
  impl_->refresh_metadata();
}

std::vector<std::pair<std::string, HostTensor>> Model::state() const {
  std::lock_guard<std::mutex> run(impl_->run_mutex);
  return translate_errors("ERR_SDVP_TORCH", "reading the model's state failed", [&] {
    std::vector<std::pair<std::string, HostTensor>> out;
    for (const auto& [name, value] : impl_->named_parameters())
      out.emplace_back(name, to_host(value));
    for (const auto& named : impl_->module.named_buffers(/*recurse=*/true))
      out.emplace_back(named.name, to_host(named.value));
    return out;
  });
}

std::vector<ParameterInfo> Model::parameters() const {
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  return impl_->parameter_info;
}

std::vector<MethodInfo> Model::methods() const {
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  return impl_->method_info;
}

std::vector<std::pair<std::string, HostValue>> Model::attributes() const {
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  return impl_->attribute_values;
}

int64_t Model::set_trainable(const std::vector<ParamGroupRule>& patterns, bool trainable) {
  std::vector<NamePattern> compiled;
  for (const ParamGroupRule& rule : patterns) compiled.emplace_back(rule);
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  int64_t matched = 0;
  ++impl_->trainable_generation;
  for (ParameterInfo& info : impl_->parameter_info) {
    for (const NamePattern& pattern : compiled) {
      if (pattern.matches(info.name)) {
        info.trainable = trainable;
        ++matched;
        break;
      }
    }
  }
  return matched;
}

std::string Model::device() const { return impl_->device.str(); }

int64_t Model::step() const {
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  return impl_->step;
}

std::optional<OptimizerConfig> Model::optimizer_config() const {
  std::lock_guard<std::mutex> lock(impl_->meta_mutex);
  return impl_->optimizer_config;
}

}  // namespace sdvp::torch_runtime
