// TorchModel, the wrapped native class over sdvp::torch_runtime::Model: marshals validated
// JavaScript arguments into the runtime's host structs, runs every model operation on the runtime's
// own thread (a Promise settled through a thread-safe function), and turns RuntimeError codes into
// JavaScript errors. Compiled only with LibTorch (SDVP_HAVE_TORCH).
#ifdef SDVP_HAVE_TORCH

#include "torch_model_binding.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "process_group_binding.h"
#include "torch/runtime_error.h"
#include "torch/torch_runtime.h"
#include "torch_values.h"

namespace sdvp::addon {
namespace {

namespace rt = sdvp::torch_runtime;

// ---- Reading JavaScript values
// ---------------------------------------------------------------------

// An optional typed-array field of the objective, shaped [rows, length / rows].
rt::HostTensor ReadRowsArray(Napi::Object object, const char* field, int64_t rows, bool matrix) {
  Napi::Value value = object.Get(field);
  if (value.IsUndefined() || value.IsNull()) return rt::HostTensor();
  if (!value.IsTypedArray())
    throw CodedError("ERR_SDVP_ARG", std::string("objective.") + field + " must be a typed array");
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  const int64_t length = static_cast<int64_t>(array.ElementLength());
  if (!matrix) return CopyTensor(array, {length});
  if (rows < 1 || length % rows != 0) {
    throw CodedError("ERR_SDVP_SHAPE", std::string("objective.") + field + " has " +
                                           std::to_string(length) +
                                           " entries, not a multiple of the batch's " +
                                           std::to_string(rows) + " rows");
  }
  return CopyTensor(array, {rows, length / rows});
}

// The objective fields (the names lib/kernels/validate-spec.ts produces) -> ObjectiveOptions.
rt::ObjectiveOptions ReadObjective(Napi::Value value, int64_t rows) {
  if (!value.IsObject()) throw CodedError("ERR_SDVP_ARG", "objective must be an object");
  Napi::Object object = value.As<Napi::Object>();
  rt::ObjectiveOptions options;
  options.teacher_kind =
      static_cast<TeacherKind>(static_cast<int32_t>(NumberOf(object, "teacherKind")));
  if (options.teacher_kind == TeacherKind::kDense) {
    options.teacher_logits = ReadRowsArray(object, "teacherLogits", rows, true);
  } else if (options.teacher_kind == TeacherKind::kTopK) {
    options.topk = static_cast<int64_t>(NumberOf(object, "topk"));
    options.topk_indices = ReadRowsArray(object, "topkIndices", rows, true);
    options.topk_logprobs = ReadRowsArray(object, "topkLogprobs", rows, true);
    options.topk_missing =
        static_cast<TopKMissing>(static_cast<int32_t>(NumberOf(object, "topkMissing")));
  } else if (options.teacher_kind != TeacherKind::kNone) {
    throw CodedError("ERR_SDVP_OPTION", "teacherKind must be 0, 1 or 2");
  }
  options.labels = ReadRowsArray(object, "labels", rows, false);
  options.row_weights = ReadRowsArray(object, "rowWeights", rows, false);
  options.ignore_index = static_cast<int32_t>(NumberOf(object, "ignoreIndex"));
  options.ce_weight = static_cast<float>(NumberOf(object, "ceWeight"));
  options.kd_weight = static_cast<float>(NumberOf(object, "kdWeight"));
  options.temperature = static_cast<float>(NumberOf(object, "temperature"));
  options.t2 = object.Get("t2").ToBoolean().Value();
  options.divergence =
      static_cast<Divergence>(static_cast<int32_t>(NumberOf(object, "divergence")));
  options.jsd_beta = static_cast<float>(NumberOf(object, "jsdBeta"));
  options.label_smoothing = static_cast<float>(NumberOf(object, "labelSmoothing"));
  options.z_loss = static_cast<float>(NumberOf(object, "zLoss"));
  options.reduction = static_cast<Reduction>(static_cast<int32_t>(NumberOf(object, "reduction")));
  if (auto normalizer = OptionalNumberOf(object, "normalizer")) {
    options.has_normalizer = true;
    options.normalizer = *normalizer;
  }
  options.grad_scale = static_cast<float>(NumberOf(object, "gradScale"));
  return options;
}

std::vector<rt::ParamGroupRule> ReadPatterns(Napi::Value value) {
  if (!value.IsArray()) throw CodedError("ERR_SDVP_ARG", "patterns must be an array");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<rt::ParamGroupRule> out;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value entry = array.Get(i);
    if (!entry.IsObject())
      throw CodedError("ERR_SDVP_ARG", "each pattern must be { pattern, regex }");
    Napi::Object object = entry.As<Napi::Object>();
    rt::ParamGroupRule rule;
    rule.pattern = StringOf(object.Get("pattern"), "pattern");
    rule.is_regex = object.Get("regex").ToBoolean().Value();
    rule.lr = OptionalNumberOf(object, "lr");
    rule.weight_decay = OptionalNumberOf(object, "weightDecay");
    out.push_back(std::move(rule));
  }
  return out;
}

rt::OptimizerConfig ReadOptimizer(Napi::Value value) {
  if (!value.IsObject()) throw CodedError("ERR_SDVP_ARG", "optimizer must be an object");
  Napi::Object object = value.As<Napi::Object>();
  rt::OptimizerConfig config;
  config.kind =
      static_cast<rt::OptimizerConfig::Kind>(static_cast<int32_t>(NumberOf(object, "kind")));
  config.lr = NumberOf(object, "lr");
  config.weight_decay = NumberOf(object, "weightDecay");
  config.beta1 = NumberOf(object, "beta1");
  config.beta2 = NumberOf(object, "beta2");
  config.eps = NumberOf(object, "eps");
  config.momentum = NumberOf(object, "momentum");
  config.dampening = NumberOf(object, "dampening");
  config.nesterov = object.Get("nesterov").ToBoolean().Value();
  config.max_grad_norm = NumberOf(object, "maxGradNorm");
  Napi::Value schedule_value = object.Get("schedule");
  if (!schedule_value.IsObject())
    throw CodedError("ERR_SDVP_ARG", "optimizer.schedule must be an object");
  Napi::Object schedule = schedule_value.As<Napi::Object>();
  config.schedule.kind =
      static_cast<rt::ScheduleConfig::Kind>(static_cast<int32_t>(NumberOf(schedule, "kind")));
  config.schedule.warmup_steps = static_cast<int64_t>(NumberOf(schedule, "warmupSteps"));
  config.schedule.total_steps = static_cast<int64_t>(NumberOf(schedule, "totalSteps"));
  config.schedule.min_factor = NumberOf(schedule, "minFactor");
  config.groups = ReadPatterns(object.Get("groups"));
  return config;
}

rt::ArchitectureConfig ReadArchitecture(Napi::Value value) {
  if (!value.IsObject()) throw CodedError("ERR_SDVP_ARG", "config must be an object");
  Napi::Object object = value.As<Napi::Object>();
  rt::ArchitectureConfig config;
  config.architecture = StringOf(object.Get("architecture"), "architecture");
  Napi::Value channels = object.Get("channels");
  if (!channels.IsArray()) throw CodedError("ERR_SDVP_ARG", "channels must be an array of numbers");
  config.channels.clear();
  Napi::Array channel_array = channels.As<Napi::Array>();
  for (uint32_t i = 0; i < channel_array.Length(); ++i) {
    config.channels.push_back(channel_array.Get(i).As<Napi::Number>().Int64Value());
  }
  Napi::Value strides = object.Get("strides");
  config.strides.clear();
  if (strides.IsArray()) {
    Napi::Array stride_array = strides.As<Napi::Array>();
    for (uint32_t i = 0; i < stride_array.Length(); ++i) {
      config.strides.push_back(stride_array.Get(i).As<Napi::Number>().Int64Value());
    }
  }
  config.image_size = static_cast<int64_t>(NumberOf(object, "imageSize"));
  config.dim = static_cast<int64_t>(NumberOf(object, "dim"));
  config.hidden = static_cast<int64_t>(NumberOf(object, "hidden"));
  config.grid_size = static_cast<int64_t>(NumberOf(object, "gridSize"));
  config.max_tokens = static_cast<int64_t>(NumberOf(object, "maxTokens"));
  config.layers = static_cast<int64_t>(NumberOf(object, "layers"));
  config.heads = static_cast<int64_t>(NumberOf(object, "heads"));
  config.token_vocab = StringsOf(object.Get("tokenVocab"), "tokenVocab");
  config.answer_vocab = StringsOf(object.Get("answerVocab"), "answerVocab");
  config.labels = StringsOf(object.Get("labels"), "labels");
  config.seed = static_cast<uint64_t>(NumberOf(object, "seed"));
  config.config_json = StringOf(object.Get("configJson"), "configJson");
  return config;
}

// ---- Writing JavaScript values
// ---------------------------------------------------------------------

Napi::Value HostValueToJs(Napi::Env env, const rt::HostValue& value) {
  switch (value.kind) {
    case rt::HostValue::Kind::kNone:
      return env.Null();
    case rt::HostValue::Kind::kTensor:
      return TensorValue(env, value.tensor);
    case rt::HostValue::Kind::kList: {
      Napi::Array array = Napi::Array::New(env, value.items.size());
      for (size_t i = 0; i < value.items.size(); ++i)
        array.Set(static_cast<uint32_t>(i), HostValueToJs(env, value.items[i]));
      return array;
    }
    case rt::HostValue::Kind::kDict: {
      Napi::Object object = Napi::Object::New(env);
      for (size_t i = 0; i < value.items.size(); ++i)
        object.Set(value.keys[i], HostValueToJs(env, value.items[i]));
      return object;
    }
    case rt::HostValue::Kind::kBool:
      return Napi::Boolean::New(env, value.boolean);
    case rt::HostValue::Kind::kInt:
      return Napi::Number::New(env, static_cast<double>(value.integer));
    case rt::HostValue::Kind::kDouble:
      return Napi::Number::New(env, value.number);
    case rt::HostValue::Kind::kString:
      return Napi::String::New(env, value.text);
  }
  return env.Undefined();
}

template <typename T, typename Array>
Napi::Value CopyArray(Napi::Env env, const std::vector<T>& values) {
  Array array = Array::New(env, values.size());
  if (!values.empty()) std::memcpy(array.Data(), values.data(), values.size() * sizeof(T));
  return array;
}

Napi::Value OptimizerToJs(Napi::Env env, const rt::OptimizerConfig& config) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", static_cast<int32_t>(config.kind));
  out.Set("lr", config.lr);
  out.Set("weightDecay", config.weight_decay);
  out.Set("beta1", config.beta1);
  out.Set("beta2", config.beta2);
  out.Set("eps", config.eps);
  out.Set("momentum", config.momentum);
  out.Set("dampening", config.dampening);
  out.Set("nesterov", config.nesterov);
  out.Set("maxGradNorm", config.max_grad_norm);
  Napi::Object schedule = Napi::Object::New(env);
  schedule.Set("kind", static_cast<int32_t>(config.schedule.kind));
  schedule.Set("warmupSteps", static_cast<double>(config.schedule.warmup_steps));
  schedule.Set("totalSteps", static_cast<double>(config.schedule.total_steps));
  schedule.Set("minFactor", config.schedule.min_factor);
  out.Set("schedule", schedule);
  Napi::Array groups = Napi::Array::New(env, config.groups.size());
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const rt::ParamGroupRule& rule = config.groups[i];
    Napi::Object group = Napi::Object::New(env);
    group.Set("pattern", rule.pattern);
    group.Set("regex", rule.is_regex);
    if (rule.lr) group.Set("lr", *rule.lr);
    if (rule.weight_decay) group.Set("weightDecay", *rule.weight_decay);
    groups.Set(static_cast<uint32_t>(i), group);
  }
  out.Set("groups", groups);
  return out;
}

Napi::Value TrainResultToJs(Napi::Env env, const rt::TrainStepResult& result) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", result.loss);
  out.Set("normalizer", result.normalizer);
  out.Set("validRows", static_cast<double>(result.valid_rows));
  out.Set("rows", static_cast<double>(result.rows));
  out.Set("vocab", static_cast<double>(result.vocab));
  if (!result.row_loss.empty())
    out.Set("rowLoss", CopyArray<float, Napi::Float32Array>(env, result.row_loss));
  Napi::Object stats = Napi::Object::New(env);
  stats.Set("lse", CopyArray<float, Napi::Float32Array>(env, result.lse));
  stats.Set("ce", CopyArray<float, Napi::Float32Array>(env, result.ce));
  stats.Set("kd", CopyArray<float, Napi::Float32Array>(env, result.kd));
  stats.Set("argmax", CopyArray<int32_t, Napi::Int32Array>(env, result.argmax));
  out.Set("stats", stats);
  out.Set("gradNorm", result.grad_norm);
  out.Set("clipped", result.clipped);
  out.Set("lr", result.lr);
  out.Set("step", static_cast<double>(result.step));
  Napi::Object timings = Napi::Object::New(env);
  timings.Set("forwardMs", result.timings.forward_ms);
  timings.Set("lossMs", result.timings.loss_ms);
  timings.Set("backwardMs", result.timings.backward_ms);
  timings.Set("optimizerMs", result.timings.optimizer_ms);
  timings.Set("totalMs", result.timings.total_ms);
  out.Set("timings", timings);
  if (result.distributed.world_size > 0) {
    Napi::Object distributed = Napi::Object::New(env);
    distributed.Set("worldSize", result.distributed.world_size);
    distributed.Set("rank", result.distributed.rank);
    distributed.Set("globalRows", static_cast<double>(result.distributed.global_rows));
    distributed.Set("bytes", static_cast<double>(result.distributed.bytes));
    distributed.Set("buckets", result.distributed.buckets);
    distributed.Set("communicationMs", result.distributed.communication_ms);
    out.Set("distributed", distributed);
  }
  return out;
}

// ---- The executor
// -----------------------------------------------------------------------------------

// Every model operation of the process runs on this one thread, not on libuv's pool. LibTorch's
// OpenMP keeps a team of threads per calling thread; operations hopping between pool threads leave
// the idle teams spinning against the busy one (a quarter slower on two cores) and start on cold
// caches.
class TorchExecutor {
 public:
  static TorchExecutor& Get() {
    static TorchExecutor executor;
    return executor;
  }

  void Submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

  ~TorchExecutor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;  // at process exit: finish the running job, drop the queued ones
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  TorchExecutor() : thread_([this] { Loop(); }) {}

  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (stop_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// One operation in flight: its promise, what it keeps alive, and how it settles.
struct PendingCall {
  using Work = std::function<void()>;
  using Settle = std::function<Napi::Value(Napi::Env)>;

  Napi::Promise::Deferred deferred;
  std::vector<Napi::ObjectReference> kept;
  Work work;
  Settle settle;
  bool failed = false;
  std::string code;
  std::string message;
};

// On the JavaScript thread: resolves or rejects the promise, then frees the call.
void SettleOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, PendingCall* call) {
  if (env == nullptr) {  // the environment is shutting down: nothing to settle, references are gone
    for (Napi::ObjectReference& ref : call->kept) ref.SuppressDestruct();
    delete call;
    return;
  }
  Napi::HandleScope scope(env);
  if (call->failed) {
    call->deferred.Reject(MakeError(env, call->code.c_str(), call->message).Value());
  } else {
    try {
      call->deferred.Resolve(call->settle ? call->settle(env) : env.Undefined());
    } catch (const Napi::Error& error) {
      call->deferred.Reject(error.Value());
    } catch (const std::exception& error) {
      call->deferred.Reject(MakeError(env, "ERR_SDVP_NATIVE", error.what()).Value());
    }
  }
  delete call;
}

using SettleFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, PendingCall, SettleOnJsThread>;

// Runs `work` on the executor thread and settles a promise with `settle` on the JavaScript thread,
// keeping the given JavaScript objects (the model, the cancel flag) alive until then.
Napi::Promise Queue(Napi::Env env, const char* name, PendingCall::Work work,
                    PendingCall::Settle settle, std::vector<Napi::Value> keep) {
  auto* call =
      new PendingCall{Napi::Promise::Deferred::New(env), {}, std::move(work), std::move(settle)};
  for (Napi::Value& value : keep) {
    if (value.IsObject()) call->kept.push_back(Napi::Persistent(value.As<Napi::Object>()));
  }
  Napi::Promise promise = call->deferred.Promise();
  SettleFunction settle_function = SettleFunction::New(env, name, 0, 1);
  TorchExecutor::Get().Submit([call, settle_function]() mutable {
    try {
      call->work();
    } catch (const CodedError& error) {  // rt::RuntimeError is the same type
      call->failed = true;
      call->code = error.code();
      call->message = error.what();
    } catch (const std::exception& error) {
      call->failed = true;
      call->code = "ERR_SDVP_NATIVE";
      call->message = std::string("native error: ") + error.what();
    } catch (...) {
      call->failed = true;
      call->code = "ERR_SDVP_NATIVE";
      call->message = "native error of unknown type";
    }
    call->work = nullptr;  // free what the work captured (input copies) on this thread
    if (settle_function.BlockingCall(call) != napi_ok) {
      // The environment is gone; the settle callback will not run.
    }
    settle_function.Release();
  });
  return promise;
}

// An optional Int32Array cancel flag: its data pointer (the array is kept alive by the worker).
const volatile int32_t* CancelFlag(Napi::Value value) {
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      value.As<Napi::TypedArray>().ElementLength() < 1) {
    throw CodedError("ERR_SDVP_ARG", "the cancel flag must be an Int32Array of length >= 1");
  }
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  return array.Data();
}

// ---- TorchModel
// ------------------------------------------------------------------------------------

class TorchModel : public Napi::ObjectWrap<TorchModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TorchModel",
                       {
                           InstanceMethod<&TorchModel::Load>("load"),
                           InstanceMethod<&TorchModel::Create>("create"),
                           InstanceMethod<&TorchModel::Call>("call"),
                           InstanceMethod<&TorchModel::TrainStep>("trainStep"),
                           InstanceMethod<&TorchModel::JoinGroup>("joinGroup"),
                           InstanceMethod<&TorchModel::AbstainFromStep>("abstainFromStep"),
                           InstanceMethod<&TorchModel::State>("state"),
                           InstanceMethod<&TorchModel::Save>("save"),
                           InstanceMethod<&TorchModel::SaveCheckpoint>("saveCheckpoint"),
                           InstanceMethod<&TorchModel::LoadCheckpoint>("loadCheckpoint"),
                           InstanceMethod<&TorchModel::Parameters>("parameters"),
                           InstanceMethod<&TorchModel::Methods>("methods"),
                           InstanceMethod<&TorchModel::Attributes>("attributes"),
                           InstanceMethod<&TorchModel::SetTrainable>("setTrainable"),
                           InstanceMethod<&TorchModel::Info>("info"),
                           InstanceMethod<&TorchModel::Dispose>("dispose"),
                       });
  }

  explicit TorchModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TorchModel>(info) {}

 private:
  // The model, or a coded error when there is none (disposed, or not loaded yet).
  std::shared_ptr<rt::Model> Require() const {
    if (disposed_) throw CodedError("ERR_SDVP_DISPOSED", "the model was disposed");
    if (!model_) throw CodedError("ERR_SDVP_ARG", "the model is not loaded yet");
    return model_;
  }

  // Loads (or creates) on a worker; the wrapper takes the model on the JavaScript thread.
  Napi::Value Install(Napi::Env env, const char* name,
                      std::function<std::shared_ptr<rt::Model>()> make, Napi::Value self) {
    if (model_ || disposed_) throw CodedError("ERR_SDVP_ARG", "a TorchModel is loaded once");
    auto slot = std::make_shared<std::shared_ptr<rt::Model>>();
    return Queue(
        env, name, [slot, make]() { *slot = make(); },
        [this, slot](Napi::Env env) -> Napi::Value {
          if (!disposed_) model_ = *slot;
          return env.Undefined();
        },
        {self});
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      const std::string device = StringOf(info[1], "device");
      if (info[0].IsString()) {
        const std::string path = info[0].As<Napi::String>().Utf8Value();
        return Install(
            env, "sdvp:loadModel", [path, device] { return rt::Model::load_file(path, device); },
            info.This());
      }
      if (info[0].IsTypedArray()) {
        Napi::TypedArray array = info[0].As<Napi::TypedArray>();
        const uint8_t* data =
            static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
        auto bytes = std::make_shared<std::vector<uint8_t>>(data, data + array.ByteLength());
        return Install(
            env, "sdvp:loadModel",
            [bytes, device] { return rt::Model::load_bytes(*bytes, device); }, info.This());
      }
      throw CodedError("ERR_SDVP_ARG", "load takes a path or a Uint8Array");
    });
  }

  Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      const rt::ArchitectureConfig config = ReadArchitecture(info[0]);
      const std::string device = StringOf(info[1], "device");
      return Install(
          env, "sdvp:createModel", [config, device] { return rt::Model::create(config, device); },
          info.This());
    });
  }

  Napi::Value Call(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      const std::string method = StringOf(info[0], "method");
      auto inputs = std::make_shared<std::vector<rt::HostTensor>>(ReadTensors(info[1]));
      const int64_t batch_size = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 0;
      const volatile int32_t* cancel = CancelFlag(info[3]);
      auto result = std::make_shared<rt::HostValue>();
      return Queue(
          env, "sdvp:call",
          [model, method, inputs, batch_size, cancel, result] {
            *result = model->call(method, *inputs, batch_size, cancel);
          },
          [result](Napi::Env env) { return HostValueToJs(env, *result); }, {info.This(), info[3]});
    });
  }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      if (!info[0].IsObject())
        throw CodedError("ERR_SDVP_ARG", "trainStep takes an options object");
      Napi::Object options = info[0].As<Napi::Object>();
      auto request = std::make_shared<rt::TrainStepRequest>();
      request->method = StringOf(options.Get("method"), "method");
      request->inputs = ReadTensors(options.Get("inputs"));
      const int64_t rows = request->inputs.empty() || request->inputs[0].shape.empty()
                               ? 0
                               : request->inputs[0].shape[0];
      request->objective = ReadObjective(options.Get("objective"), rows);
      Napi::Value optimizer = options.Get("optimizer");
      if (!optimizer.IsUndefined() && !optimizer.IsNull())
        request->optimizer = ReadOptimizer(optimizer);
      request->accumulate = static_cast<int32_t>(NumberOf(options, "accumulate"));
      Napi::Value distributed = options.Get("distributed");
      if (!distributed.IsUndefined() && !distributed.IsNull()) {
        if (!distributed.IsObject())
          throw CodedError("ERR_SDVP_ARG", "distributed must be { group, bucketBytes }");
        Napi::Object settings = distributed.As<Napi::Object>();
        request->distributed = UnwrapProcessGroup(settings.Get("group"));
        request->bucket_bytes = static_cast<int64_t>(NumberOf(settings, "bucketBytes"));
      }
      request->cancel = CancelFlag(info[1]);
      auto result = std::make_shared<rt::TrainStepResult>();
      return Queue(
          env, "sdvp:trainStep",
          [model, request, result] { *result = model->train_step(*request); },
          [result](Napi::Env env) { return TrainResultToJs(env, *result); },
          {info.This(), info[1]});
    });
  }

  // A group operation on the model: joinGroup or abstainFromStep.
  Napi::Value WithGroup(const Napi::CallbackInfo& info, const char* name,
                        void (rt::Model::*operation)(const std::shared_ptr<rt::ProcessGroup>&)) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      auto group = UnwrapProcessGroup(info[0]);
      return Queue(env, name, [model, group, operation] { ((*model).*operation)(group); }, nullptr,
                   {info.This(), info[0]});
    });
  }

  Napi::Value JoinGroup(const Napi::CallbackInfo& info) {
    return WithGroup(info, "sdvp:joinGroup", &rt::Model::join_group);
  }
  Napi::Value AbstainFromStep(const Napi::CallbackInfo& info) {
    return WithGroup(info, "sdvp:abstainFromStep", &rt::Model::abstain_from_step);
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      auto state = std::make_shared<std::vector<std::pair<std::string, rt::HostTensor>>>();
      return Queue(
          env, "sdvp:state", [model, state] { *state = model->state(); },
          [state](Napi::Env env) -> Napi::Value {
            Napi::Object out = Napi::Object::New(env);
            for (const auto& [name, tensor] : *state) out.Set(name, TensorValue(env, tensor));
            return out;
          },
          {info.This()});
    });
  }

  Napi::Value SaveWith(const Napi::CallbackInfo& info, const char* name,
                       std::function<void(rt::Model&, const std::string&)> action) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      const std::string path = StringOf(info[0], "path");
      return Queue(env, name, [model, path, action] { action(*model, path); }, nullptr,
                   {info.This()});
    });
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    return SaveWith(info, "sdvp:save", [](rt::Model& m, const std::string& p) { m.save(p); });
  }
  Napi::Value SaveCheckpoint(const Napi::CallbackInfo& info) {
    return SaveWith(info, "sdvp:saveCheckpoint",
                    [](rt::Model& m, const std::string& p) { m.save_checkpoint(p); });
  }
  Napi::Value LoadCheckpoint(const Napi::CallbackInfo& info) {
    return SaveWith(info, "sdvp:loadCheckpoint",
                    [](rt::Model& m, const std::string& p) { m.load_checkpoint(p); });
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      const auto parameters = Require()->parameters();
      Napi::Array out = Napi::Array::New(env, parameters.size());
      for (size_t i = 0; i < parameters.size(); ++i) {
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", parameters[i].name);
        Napi::Array shape = Napi::Array::New(env, parameters[i].shape.size());
        for (size_t d = 0; d < parameters[i].shape.size(); ++d)
          shape.Set(static_cast<uint32_t>(d), static_cast<double>(parameters[i].shape[d]));
        entry.Set("shape", shape);
        entry.Set("dtype", parameters[i].dtype);
        entry.Set("trainable", parameters[i].trainable);
        out.Set(static_cast<uint32_t>(i), entry);
      }
      return out;
    });
  }

  Napi::Value Methods(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      const auto methods = Require()->methods();
      Napi::Array out = Napi::Array::New(env, methods.size());
      for (size_t i = 0; i < methods.size(); ++i) {
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", methods[i].name);
        Napi::Array arguments = Napi::Array::New(env, methods[i].arguments.size());
        for (size_t a = 0; a < methods[i].arguments.size(); ++a)
          arguments.Set(static_cast<uint32_t>(a), methods[i].arguments[a]);
        entry.Set("arguments", arguments);
        entry.Set("returns", methods[i].returns);
        entry.Set("schema", methods[i].schema);
        out.Set(static_cast<uint32_t>(i), entry);
      }
      return out;
    });
  }

  Napi::Value Attributes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      for (const auto& [name, value] : Require()->attributes())
        out.Set(name, HostValueToJs(env, value));
      return out;
    });
  }

  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      const auto patterns = ReadPatterns(info[0]);
      const bool trainable = info[1].ToBoolean().Value();
      return Napi::Number::New(env,
                               static_cast<double>(Require()->set_trainable(patterns, trainable)));
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Require();
      Napi::Object out = Napi::Object::New(env);
      out.Set("device", model->device());
      out.Set("step", static_cast<double>(model->step()));
      const auto optimizer = model->optimizer_config();
      out.Set("optimizer", optimizer ? OptimizerToJs(env, *optimizer) : env.Null());
      return out;
    });
  }

  // Idempotent. Work already queued keeps its own reference and finishes; the model is freed after
  // it.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    disposed_ = true;
    model_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<rt::Model> model_;
  bool disposed_ = false;
};

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsNumber()) throw CodedError("ERR_SDVP_ARG", "torchSetThreads(n) takes a number");
    rt::set_threads(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  });
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, rt::threads()); });
}

Napi::Value SetGraphOptimization(const Napi::CallbackInfo& info) {
  rt::set_graph_optimization(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value GraphOptimization(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), rt::graph_optimization());
}

}  // namespace

void RegisterTorchModel(Napi::Env env, Napi::Object exports) {
  exports.Set("TorchModel", TorchModel::Define(env));
  exports.Set("torchSetThreads", Napi::Function::New(env, SetThreads, "torchSetThreads"));
  exports.Set("torchThreads", Napi::Function::New(env, Threads, "torchThreads"));
  exports.Set("torchSetGraphOptimization",
              Napi::Function::New(env, SetGraphOptimization, "torchSetGraphOptimization"));
  exports.Set("torchGraphOptimization",
              Napi::Function::New(env, GraphOptimization, "torchGraphOptimization"));
}

}  // namespace sdvp::addon

#endif  // SDVP_HAVE_TORCH
