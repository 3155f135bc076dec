// AdamW (decoupled weight decay, as torch.optim.AdamW) and SGD with momentum (as torch.optim.SGD),
// written with in-place LibTorch ops so the update runs on the parameters' device.
#include "optimizers.h"

#include <c10/core/GradMode.h>

#include <cmath>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

namespace {

constexpr double kPi = 3.14159265358979323846;

c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

c10::IValue optional_double(const std::optional<double>& value) {
  return value ? c10::IValue(*value) : c10::IValue();
}

std::optional<double> read_optional_double(const c10::IValue& value) {
  if (value.isNone()) return std::nullopt;
  return value.toDouble();
}

const c10::IValue& field(const c10::impl::GenericDict& dict, const char* key) {
  auto found = dict.find(key);
  if (found == dict.end()) {
    throw RuntimeError("ERR_SDVP_MODEL_FILE",
                       std::string("the checkpoint's optimizer lacks '") + key + "'");
  }
  return found->value();
}

}  // namespace

bool ParamGroupRule::operator==(const ParamGroupRule& other) const {
  return pattern == other.pattern && is_regex == other.is_regex && lr == other.lr &&
         weight_decay == other.weight_decay;
}

bool ScheduleConfig::operator==(const ScheduleConfig& other) const {
  return kind == other.kind && warmup_steps == other.warmup_steps &&
         total_steps == other.total_steps && min_factor == other.min_factor;
}

bool OptimizerConfig::operator==(const OptimizerConfig& other) const {
  return kind == other.kind && lr == other.lr && weight_decay == other.weight_decay &&
         beta1 == other.beta1 && beta2 == other.beta2 && eps == other.eps &&
         momentum == other.momentum && dampening == other.dampening && nesterov == other.nesterov &&
         max_grad_norm == other.max_grad_norm && schedule == other.schedule &&
         groups == other.groups;
}

double schedule_factor(const ScheduleConfig& schedule, int64_t step) {
  const double s = static_cast<double>(step);
  const double warmup = static_cast<double>(schedule.warmup_steps);
  if (schedule.kind != ScheduleConfig::Kind::kConstant && schedule.warmup_steps > 0 && s < warmup) {
    return s / warmup;
  }
  if (schedule.kind == ScheduleConfig::Kind::kCosine) {
    const double span = static_cast<double>(schedule.total_steps) - warmup;
    double progress = span > 0 ? (s - warmup) / span : 1.0;
    progress = std::min(1.0, std::max(0.0, progress));
    return schedule.min_factor +
           (1.0 - schedule.min_factor) * 0.5 * (1.0 + std::cos(kPi * progress));
  }
  return 1.0;
}

Optimizer::Optimizer(OptimizerConfig config) { reconfigure(std::move(config)); }

void Optimizer::reconfigure(OptimizerConfig config) {
  std::vector<NamePattern> patterns;
  patterns.reserve(config.groups.size());
  for (const ParamGroupRule& rule : config.groups) patterns.emplace_back(rule);
  if (config.kind != config_.kind) state_.clear();
  config_ = std::move(config);
  patterns_ = std::move(patterns);
}

int Optimizer::group_of(const std::string& name) const {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].matches(name)) return static_cast<int>(i);
  }
  return -1;
}

double Optimizer::step(const NamedTensors& parameters, int64_t step) {
  const c10::NoGradGuard no_grad;
  const double factor = schedule_factor(config_.schedule, step);
  for (const auto& [name, param] : parameters) {
    const at::Tensor& grad = param.grad();
    if (!grad.defined() || !param.requires_grad()) continue;
    const int group = group_of(name);
    const ParamGroupRule* rule = group >= 0 ? &config_.groups[static_cast<size_t>(group)] : nullptr;
    const double lr = (rule && rule->lr ? *rule->lr : config_.lr) * factor;
    const double weight_decay =
        rule && rule->weight_decay ? *rule->weight_decay : config_.weight_decay;
    ParamState& state = state_[name];
    state.steps += 1;
    // The param tensor is a leaf that requires grad: update its data, outside autograd.
    at::Tensor data = param.detach();
    if (config_.kind == OptimizerConfig::Kind::kAdamW) {
      if (!state.exp_avg.defined()) {
        state.exp_avg = at::zeros_like(data, at::MemoryFormat::Preserve);
        state.exp_avg_sq = at::zeros_like(data, at::MemoryFormat::Preserve);
      }
      if (weight_decay != 0) data.mul_(1.0 - lr * weight_decay);
      state.exp_avg.mul_(config_.beta1).add_(grad, 1.0 - config_.beta1);
      state.exp_avg_sq.mul_(config_.beta2).addcmul_(grad, grad, 1.0 - config_.beta2);
      const double bias1 = 1.0 - std::pow(config_.beta1, static_cast<double>(state.steps));
      const double bias2 = 1.0 - std::pow(config_.beta2, static_cast<double>(state.steps));
      const at::Tensor denom = (state.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(config_.eps);
      data.addcdiv_(state.exp_avg, denom, -lr / bias1);
    } else {
      at::Tensor direction = weight_decay != 0 ? grad.add(data, weight_decay) : grad;
      if (config_.momentum != 0) {
        if (!state.momentum.defined()) {
          state.momentum = direction.clone();
        } else {
          state.momentum.mul_(config_.momentum).add_(direction, 1.0 - config_.dampening);
        }
        direction =
            config_.nesterov ? direction.add(state.momentum, config_.momentum) : state.momentum;
      }
      data.add_(direction, -lr);
    }
  }
  return config_.lr * factor;
}

c10::IValue Optimizer::state_to_ivalue() const {
  c10::impl::GenericDict params = new_dict();
  for (const auto& [name, state] : state_) {
    auto tensor_or_none = [](const at::Tensor& t) {
      return t.defined() ? c10::IValue(t) : c10::IValue();
    };
    params.insert(name, c10::ivalue::Tuple::create(
                            {c10::IValue(state.steps), tensor_or_none(state.exp_avg),
                             tensor_or_none(state.exp_avg_sq), tensor_or_none(state.momentum)}));
  }
  c10::impl::GenericDict dict = new_dict();
  dict.insert("kind", c10::IValue(static_cast<int64_t>(config_.kind)));
  dict.insert("params", c10::IValue(params));
  return c10::IValue(dict);
}

void Optimizer::state_from_ivalue(const c10::IValue& value, const NamedTensors& parameters) {
  if (!value.isGenericDict())
    throw RuntimeError("ERR_SDVP_MODEL_FILE", "the checkpoint's optimizer state is not a dict");
  const c10::impl::GenericDict dict = value.toGenericDict();
  if (field(dict, "kind").toInt() != static_cast<int64_t>(config_.kind)) {
    throw RuntimeError("ERR_SDVP_MODEL_FILE",
                       "the checkpoint's optimizer state is of another optimizer kind");
  }
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, tensor] : parameters) by_name[name] = &tensor;
  std::map<std::string, ParamState> state;
  for (const auto& entry : field(dict, "params").toGenericDict()) {
    const std::string name = entry.key().toStringRef();
    auto param = by_name.find(name);
    if (param == by_name.end()) {
      throw RuntimeError(
          "ERR_SDVP_MODEL_FILE",
          "the checkpoint's optimizer state names parameter '" + name + "', which the model lacks");
    }
    const auto& elements = entry.value().toTupleRef().elements();
    if (elements.size() != 4)
      throw RuntimeError("ERR_SDVP_MODEL_FILE", "malformed optimizer state for '" + name + "'");
    ParamState s;
    s.steps = elements[0].toInt();
    auto read = [&](const c10::IValue& v) {
      if (v.isNone()) return at::Tensor();
      at::Tensor t = v.toTensor();
      if (!t.sizes().equals(param->second->sizes())) {
        throw RuntimeError("ERR_SDVP_MODEL_FILE", "the checkpoint's optimizer state for '" + name +
                                                      "' does not match the parameter's shape");
      }
      return t.to(param->second->device(), param->second->scalar_type()).clone();
    };
    s.exp_avg = read(elements[1]);
    s.exp_avg_sq = read(elements[2]);
    s.momentum = read(elements[3]);
    state[name] = std::move(s);
  }
  state_ = std::move(state);
}

c10::IValue optimizer_config_to_ivalue(const OptimizerConfig& config) {
  c10::impl::GenericDict dict = new_dict();
  dict.insert("kind", c10::IValue(static_cast<int64_t>(config.kind)));
  dict.insert("lr", config.lr);
  dict.insert("weight_decay", config.weight_decay);
  dict.insert("beta1", config.beta1);
  dict.insert("beta2", config.beta2);
  dict.insert("eps", config.eps);
  dict.insert("momentum", config.momentum);
  dict.insert("dampening", config.dampening);
  dict.insert("nesterov", config.nesterov);
  dict.insert("max_grad_norm", config.max_grad_norm);
  dict.insert("schedule_kind", c10::IValue(static_cast<int64_t>(config.schedule.kind)));
  dict.insert("warmup_steps", c10::IValue(config.schedule.warmup_steps));
  dict.insert("total_steps", c10::IValue(config.schedule.total_steps));
  dict.insert("min_factor", config.schedule.min_factor);
  c10::impl::GenericList groups(c10::AnyType::get());
  for (const ParamGroupRule& rule : config.groups) {
    c10::impl::GenericDict group = new_dict();
    group.insert("pattern", rule.pattern);
    group.insert("is_regex", rule.is_regex);
    group.insert("lr", optional_double(rule.lr));
    group.insert("weight_decay", optional_double(rule.weight_decay));
    groups.push_back(c10::IValue(group));
  }
  dict.insert("groups", c10::IValue(groups));
  return c10::IValue(dict);
}

OptimizerConfig optimizer_config_from_ivalue(const c10::IValue& value) {
  try {
    const c10::impl::GenericDict dict = value.toGenericDict();
    OptimizerConfig config;
    config.kind = static_cast<OptimizerConfig::Kind>(field(dict, "kind").toInt());
    config.lr = field(dict, "lr").toDouble();
    config.weight_decay = field(dict, "weight_decay").toDouble();
    config.beta1 = field(dict, "beta1").toDouble();
    config.beta2 = field(dict, "beta2").toDouble();
    config.eps = field(dict, "eps").toDouble();
    config.momentum = field(dict, "momentum").toDouble();
    config.dampening = field(dict, "dampening").toDouble();
    config.nesterov = field(dict, "nesterov").toBool();
    config.max_grad_norm = field(dict, "max_grad_norm").toDouble();
    config.schedule.kind = static_cast<ScheduleConfig::Kind>(field(dict, "schedule_kind").toInt());
    config.schedule.warmup_steps = field(dict, "warmup_steps").toInt();
    config.schedule.total_steps = field(dict, "total_steps").toInt();
    config.schedule.min_factor = field(dict, "min_factor").toDouble();
    for (const c10::IValue& entry : field(dict, "groups").toListRef()) {
      const c10::impl::GenericDict group = entry.toGenericDict();
      ParamGroupRule rule;
      rule.pattern = field(group, "pattern").toStringRef();
      rule.is_regex = field(group, "is_regex").toBool();
      rule.lr = read_optional_double(field(group, "lr"));
      rule.weight_decay = read_optional_double(field(group, "weight_decay"));
      config.groups.push_back(std::move(rule));
    }
    return config;
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& error) {
    throw RuntimeError(
        "ERR_SDVP_MODEL_FILE",
        std::string("the checkpoint's optimizer settings are malformed: ") + error.what());
  }
}

}  // namespace sdvp::torch_runtime
