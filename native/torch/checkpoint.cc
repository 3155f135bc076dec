// Encodes and decodes the training state stored beside a TorchScript module in a checkpoint, and
// serialises a module (with or without that state) to bytes.
#include "checkpoint.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <set>
#include <sstream>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

const char* const kTrainerStateFile = "sdvp_trainer.pkl";

namespace {
constexpr int64_t kFormatVersion = 1;
}  // namespace

std::string encode_training_state(const Model::Impl& impl) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("format", std::string("sdvp-checkpoint"));
  dict.insert("version", c10::IValue(kFormatVersion));
  dict.insert("step", c10::IValue(impl.step));
  if (impl.optimizer) {
    dict.insert("optimizer", optimizer_config_to_ivalue(impl.optimizer->config()));
    dict.insert("optimizer_state", impl.optimizer->state_to_ivalue());
  } else {
    dict.insert("optimizer", c10::IValue());
    dict.insert("optimizer_state", c10::IValue());
  }
  c10::List<std::string> frozen;
  for (const auto& [name, param] : impl.named_parameters()) {
    if (!param.requires_grad()) frozen.push_back(name);
  }
  dict.insert("frozen", c10::IValue(frozen));
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
  return std::string(bytes.begin(), bytes.end());
}

void decode_training_state(Model::Impl& impl, const std::string& pickled) {
  translate_errors("ERR_SDVP_MODEL_FILE", "the checkpoint's training state is unreadable", [&] {
    const c10::IValue value =
        torch::jit::pickle_load(std::vector<char>(pickled.begin(), pickled.end()));
    if (!value.isGenericDict()) throw RuntimeError("ERR_SDVP_MODEL_FILE", "it is not a dict");
    const c10::impl::GenericDict dict = value.toGenericDict();
    auto get = [&](const char* key) {
      auto found = dict.find(key);
      if (found == dict.end())
        throw RuntimeError("ERR_SDVP_MODEL_FILE", std::string("it lacks '") + key + "'");
      return found->value();
    };
    if (get("format").toStringRef() != "sdvp-checkpoint" ||
        get("version").toInt() > kFormatVersion) {
      throw RuntimeError("ERR_SDVP_MODEL_FILE", "it is of an unknown format or a newer version");
    }
    const int64_t step = get("step").toInt();
    std::set<std::string> frozen;
    for (const c10::IValue& name : get("frozen").toListRef()) frozen.insert(name.toStringRef());
    const NamedTensors parameters = impl.named_parameters();
    std::unique_ptr<Optimizer> optimizer;
    const c10::IValue config = get("optimizer");
    if (!config.isNone()) {
      optimizer = std::make_unique<Optimizer>(optimizer_config_from_ivalue(config));
      optimizer->state_from_ivalue(get("optimizer_state"), parameters);
    }
    // Everything decoded: commit.
    for (const auto& [name, param] : parameters) param.requires_grad_(frozen.count(name) == 0);
    impl.step = step;
    impl.optimizer = std::move(optimizer);
  });
}

std::string serialize_model(Model::Impl& impl, bool with_training_state) {
  impl.apply_trainable();
  torch::jit::ExtraFilesMap extra;
  if (with_training_state) extra[kTrainerStateFile] = encode_training_state(impl);
  std::ostringstream out;
  translate_errors("ERR_SDVP_TORCH", "saving the module failed",
                   [&] { impl.module.save(out, extra); });
  return out.str();
}

}  // namespace sdvp::torch_runtime
