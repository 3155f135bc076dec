// TorchProcessGroup, the wrapped native class over sdvp::torch_runtime::ProcessGroup: the group's
// start and every collective run on libuv's pool (AsyncWorkers; they mostly wait on the network, so
// they never hold the runtime's model thread), settle a Promise, and turn RuntimeError codes into
// JavaScript errors. Compiled only with LibTorch (SDVP_HAVE_TORCH).
#ifdef SDVP_HAVE_TORCH

#include "process_group_binding.h"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "torch/distributed.h"
#include "torch_values.h"

namespace sdvp::addon {
namespace {

namespace rt = sdvp::torch_runtime;

// One group operation on libuv's pool: `work` there, `settle` back on the JavaScript thread.
class GroupWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Settle = std::function<Napi::Value(Napi::Env)>;

  GroupWorker(Napi::Env env, const char* name, Work work, Settle settle, Napi::Object keep)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        keep_(Napi::Persistent(keep)),
        work_(std::move(work)),
        settle_(std::move(settle)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const CodedError& error) {  // rt::RuntimeError is the same type
      code_ = error.code();
      SetError(error.what());
    } catch (const std::exception& error) {
      code_ = "ERR_SDVP_NATIVE";
      SetError(std::string("native error: ") + error.what());
    } catch (...) {
      code_ = "ERR_SDVP_NATIVE";
      SetError("native error of unknown type");
    }
    work_ = nullptr;  // free what the work captured on this thread
  }

  void OnOK() override {
    try {
      deferred_.Resolve(settle_ ? settle_(Env()) : Env().Undefined());
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    } catch (const std::exception& error) {
      deferred_.Reject(MakeError(Env(), "ERR_SDVP_NATIVE", error.what()).Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(MakeError(Env(), code_.c_str(), error.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  Work work_;
  Settle settle_;
  std::string code_;
};

Napi::Promise Start(Napi::Env env, const char* name, GroupWorker::Work work,
                    GroupWorker::Settle settle, Napi::Object keep) {
  auto* worker = new GroupWorker(env, name, std::move(work), std::move(settle), keep);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

rt::ProcessGroupConfig ReadConfig(Napi::Value value) {
  if (!value.IsObject()) throw CodedError("ERR_SDVP_ARG", "the group config must be an object");
  Napi::Object object = value.As<Napi::Object>();
  rt::ProcessGroupConfig config;
  config.backend = StringOf(object.Get("backend"), "backend");
  config.rank = static_cast<int32_t>(NumberOf(object, "rank"));
  config.world_size = static_cast<int32_t>(NumberOf(object, "worldSize"));
  config.local_rank = static_cast<int32_t>(NumberOf(object, "localRank"));
  config.master_addr = StringOf(object.Get("masterAddr"), "masterAddr");
  config.master_port = static_cast<int32_t>(NumberOf(object, "masterPort"));
  config.timeout_ms = static_cast<int64_t>(NumberOf(object, "timeoutMs"));
  config.rendezvous_timeout_ms = static_cast<int64_t>(NumberOf(object, "rendezvousTimeoutMs"));
  config.fingerprint = StringOf(object.Get("fingerprint"), "fingerprint");
  config.agent_store = object.Get("agentStore").ToBoolean().Value();
  config.restart_count = static_cast<int32_t>(NumberOf(object, "restartCount"));
  return config;
}

rt::ReduceOp ReadReduceOp(Napi::Value value) {
  const std::string op = StringOf(value, "op");
  if (op == "sum") return rt::ReduceOp::kSum;
  if (op == "avg") return rt::ReduceOp::kAvg;
  if (op == "max") return rt::ReduceOp::kMax;
  if (op == "min") return rt::ReduceOp::kMin;
  throw CodedError("ERR_SDVP_OPTION", "op must be 'sum', 'avg', 'max' or 'min', not '" + op + "'");
}

class TorchProcessGroup : public Napi::ObjectWrap<TorchProcessGroup> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TorchProcessGroup",
                       {
                           InstanceMethod<&TorchProcessGroup::Init>("init"),
                           InstanceMethod<&TorchProcessGroup::AllReduce>("allReduce"),
                           InstanceMethod<&TorchProcessGroup::Broadcast>("broadcast"),
                           InstanceMethod<&TorchProcessGroup::AllGather>("allGather"),
                           InstanceMethod<&TorchProcessGroup::Barrier>("barrier"),
                           InstanceMethod<&TorchProcessGroup::AllGatherBytes>("allGatherBytes"),
                           InstanceMethod<&TorchProcessGroup::Destroy>("destroy"),
                           InstanceMethod<&TorchProcessGroup::Info>("info"),
                       });
  }

  explicit TorchProcessGroup(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<TorchProcessGroup>(info) {
    info.This().As<Napi::Object>().TypeTag(&kTypeTag);
  }

  // Marks the JavaScript objects this class wraps, so UnwrapProcessGroup can tell them apart.
  static constexpr napi_type_tag kTypeTag = {0x5d7f3c1a9e2b4f60ULL, 0x8c41d2e7a5b39f17ULL};

  std::shared_ptr<rt::ProcessGroup> Require() const {
    if (destroyed_) throw CodedError("ERR_SDVP_DISPOSED", "the process group was destroyed");
    if (!group_) throw CodedError("ERR_SDVP_ARG", "the process group has not started yet");
    return group_;
  }

 private:
  Napi::Value Init(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      if (group_ || started_) throw CodedError("ERR_SDVP_ARG", "a TorchProcessGroup starts once");
      started_ = true;
      const rt::ProcessGroupConfig config = ReadConfig(info[0]);
      auto slot = std::make_shared<std::shared_ptr<rt::ProcessGroup>>();
      return Start(
          env, "sdvp:initProcessGroup",
          [slot, config] { *slot = rt::ProcessGroup::create(config); },
          [this, slot](Napi::Env env) -> Napi::Value {
            group_ = *slot;
            return env.Undefined();
          },
          info.This().As<Napi::Object>());
    });
  }

  // A collective on one tensor that resolves to a tensor.
  Napi::Value TensorCollective(
      const Napi::CallbackInfo& info, const char* name,
      std::function<rt::HostTensor(rt::ProcessGroup&, const rt::HostTensor&)> collective) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto group = Require();
      auto input = std::make_shared<rt::HostTensor>(ReadTensor(info[0], "tensor"));
      auto output = std::make_shared<rt::HostTensor>();
      return Start(
          env, name, [group, input, output, collective] { *output = collective(*group, *input); },
          [output](Napi::Env env) { return TensorValue(env, *output); },
          info.This().As<Napi::Object>());
    });
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    const rt::ReduceOp op = ReadReduceOp(info[1]);
    return TensorCollective(info, "sdvp:allReduce",
                            [op](rt::ProcessGroup& group, const rt::HostTensor& input) {
                              return group.all_reduce(input, op);
                            });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    const int32_t src = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
    return TensorCollective(info, "sdvp:broadcast",
                            [src](rt::ProcessGroup& group, const rt::HostTensor& input) {
                              return group.broadcast(input, src);
                            });
  }

  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return TensorCollective(info, "sdvp:allGather",
                            [](rt::ProcessGroup& group, const rt::HostTensor& input) {
                              return group.all_gather(input);
                            });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto group = Require();
      return Start(
          env, "sdvp:barrier", [group] { group->barrier(); }, nullptr,
          info.This().As<Napi::Object>());
    });
  }

  Napi::Value AllGatherBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto group = Require();
      if (!info[0].IsTypedArray() ||
          info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw CodedError("ERR_SDVP_ARG", "allGatherBytes takes a Uint8Array");
      }
      Napi::Uint8Array array = info[0].As<Napi::Uint8Array>();
      auto bytes = std::make_shared<std::string>(reinterpret_cast<const char*>(array.Data()),
                                                 array.ByteLength());
      auto gathered = std::make_shared<std::vector<std::string>>();
      return Start(
          env, "sdvp:allGatherBytes",
          [group, bytes, gathered] { *gathered = group->all_gather_bytes(*bytes); },
          [gathered](Napi::Env env) -> Napi::Value {
            Napi::Array out = Napi::Array::New(env, gathered->size());
            for (size_t i = 0; i < gathered->size(); ++i) {
              const std::string& part = (*gathered)[i];
              Napi::Uint8Array one = Napi::Uint8Array::New(env, part.size());
              if (!part.empty()) std::memcpy(one.Data(), part.data(), part.size());
              out.Set(static_cast<uint32_t>(i), one);
            }
            return out;
          },
          info.This().As<Napi::Object>());
    });
  }

  // Idempotent; the release (joining the backend's threads) runs off the event loop.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<rt::ProcessGroup> group = std::move(group_);
      destroyed_ = true;
      return Start(
          env, "sdvp:destroyProcessGroup",
          [group] {
            if (group) group->destroy();
          },
          nullptr, info.This().As<Napi::Object>());
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto group = Require();
      Napi::Object out = Napi::Object::New(env);
      out.Set("rank", group->rank());
      out.Set("worldSize", group->world_size());
      out.Set("backend", group->backend());
      out.Set("port", group->port());
      return out;
    });
  }

  std::shared_ptr<rt::ProcessGroup> group_;
  bool started_ = false;
  bool destroyed_ = false;
};

Napi::Value DistributedBackends(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("gloo", rt::gloo_built());
  out.Set("nccl", rt::nccl_built());
  return out;
}

}  // namespace

std::shared_ptr<rt::ProcessGroup> UnwrapProcessGroup(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&TorchProcessGroup::kTypeTag)) {
    throw CodedError("ERR_SDVP_ARG", "distributed.group must be a ProcessGroup");
  }
  return TorchProcessGroup::Unwrap(value.As<Napi::Object>())->Require();
}

void RegisterProcessGroup(Napi::Env env, Napi::Object exports) {
  exports.Set("TorchProcessGroup", TorchProcessGroup::Define(env));
  exports.Set("distributedBackends",
              Napi::Function::New(env, DistributedBackends, "distributedBackends"));
}

}  // namespace sdvp::addon

#endif  // SDVP_HAVE_TORCH
