// Marshals a validated spec object (built by lib/kernels) into DistillLossSpec and runs the CPU
// kernel, synchronously or on a worker thread. Validation is the TypeScript layer's job; this file
// only checks what it must to never read out of bounds.
#include "distill_loss_binding.h"

#include <cmath>
#include <string>

#include "errors.h"
#include "kernels/distill_loss.h"

namespace sdvp::addon {
namespace {

// Reads an optional typed array field and checks its element count; returns its data or null.
template <typename T>
T* OptionalArray(Napi::Object spec, const char* field, size_t expected_elements) {
  Napi::Value value = spec.Get(field);
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  if (!value.IsTypedArray())
    throw CodedError("ERR_SDVP_ARG", std::string(field) + " must be a typed array");
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (array.ByteLength() != expected_elements * sizeof(T)) {
    throw CodedError("ERR_SDVP_SHAPE",
                     std::string(field) + " has " + std::to_string(array.ByteLength()) +
                         " bytes, expected " + std::to_string(expected_elements * sizeof(T)));
  }
  return reinterpret_cast<T*>(static_cast<uint8_t*>(array.ArrayBuffer().Data()) +
                              array.ByteOffset());
}

double NumberField(Napi::Object spec, const char* field) {
  Napi::Value value = spec.Get(field);
  if (!value.IsNumber()) throw CodedError("ERR_SDVP_ARG", std::string(field) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

// Builds the kernel spec from the JavaScript object. Typed-array data stay owned by JavaScript.
DistillLossSpec ReadSpec(Napi::Object object) {
  DistillLossSpec spec;
  spec.rows = static_cast<int64_t>(NumberField(object, "rows"));
  spec.vocab = static_cast<int64_t>(NumberField(object, "vocab"));
  spec.dtype = static_cast<DType>(static_cast<int32_t>(NumberField(object, "dtype")));
  if (spec.rows < 1 || spec.vocab < 1 ||
      (spec.dtype != DType::kF32 && spec.dtype != DType::kBF16)) {
    throw CodedError("ERR_SDVP_SHAPE", "rows and vocab must be positive and dtype 0 or 1");
  }
  const size_t elements = static_cast<size_t>(spec.rows) * static_cast<size_t>(spec.vocab);
  const size_t rows = static_cast<size_t>(spec.rows);
  const bool bf16 = spec.dtype == DType::kBF16;

  spec.student =
      bf16 ? static_cast<const void*>(OptionalArray<uint16_t>(object, "student", elements))
           : static_cast<const void*>(OptionalArray<float>(object, "student", elements));
  if (spec.student == nullptr) throw CodedError("ERR_SDVP_ARG", "student is required");

  spec.teacher_kind =
      static_cast<TeacherKind>(static_cast<int32_t>(NumberField(object, "teacherKind")));
  if (spec.teacher_kind == TeacherKind::kDense) {
    spec.teacher_logits =
        bf16 ? static_cast<const void*>(OptionalArray<uint16_t>(object, "teacherLogits", elements))
             : static_cast<const void*>(OptionalArray<float>(object, "teacherLogits", elements));
    if (spec.teacher_logits == nullptr)
      throw CodedError("ERR_SDVP_ARG", "teacherLogits is required");
  } else if (spec.teacher_kind == TeacherKind::kTopK) {
    spec.topk = static_cast<int64_t>(NumberField(object, "topk"));
    if (spec.topk < 1 || spec.topk > spec.vocab)
      throw CodedError("ERR_SDVP_RANGE", "topk must be in [1, vocab]");
    spec.topk_indices =
        OptionalArray<int32_t>(object, "topkIndices", rows * static_cast<size_t>(spec.topk));
    spec.topk_logprobs =
        OptionalArray<float>(object, "topkLogprobs", rows * static_cast<size_t>(spec.topk));
    if (spec.topk_indices == nullptr || spec.topk_logprobs == nullptr) {
      throw CodedError("ERR_SDVP_ARG", "topkIndices and topkLogprobs are required");
    }
    spec.topk_missing =
        static_cast<TopKMissing>(static_cast<int32_t>(NumberField(object, "topkMissing")));
  } else if (spec.teacher_kind != TeacherKind::kNone) {
    throw CodedError("ERR_SDVP_OPTION", "teacherKind must be 0, 1 or 2");
  }

  spec.labels = OptionalArray<int32_t>(object, "labels", rows);
  spec.ignore_index = static_cast<int32_t>(NumberField(object, "ignoreIndex"));
  spec.ce_weight = static_cast<float>(NumberField(object, "ceWeight"));
  spec.kd_weight = static_cast<float>(NumberField(object, "kdWeight"));
  spec.temperature = static_cast<float>(NumberField(object, "temperature"));
  spec.t2 = object.Get("t2").ToBoolean().Value();
  spec.divergence =
      static_cast<Divergence>(static_cast<int32_t>(NumberField(object, "divergence")));
  spec.jsd_beta = static_cast<float>(NumberField(object, "jsdBeta"));
  spec.label_smoothing = static_cast<float>(NumberField(object, "labelSmoothing"));
  spec.z_loss = static_cast<float>(NumberField(object, "zLoss"));
  spec.row_weights = OptionalArray<float>(object, "rowWeights", rows);
  spec.reduction = static_cast<Reduction>(static_cast<int32_t>(NumberField(object, "reduction")));
  Napi::Value normalizer = object.Get("normalizer");
  if (normalizer.IsNumber()) {
    spec.has_normalizer = true;
    spec.normalizer = normalizer.As<Napi::Number>().DoubleValue();
  }
  spec.grad = bf16 ? static_cast<void*>(OptionalArray<uint16_t>(object, "grad", elements))
                   : static_cast<void*>(OptionalArray<float>(object, "grad", elements));
  spec.grad_scale = static_cast<float>(NumberField(object, "gradScale"));
  spec.row_loss = OptionalArray<float>(object, "rowLoss", rows);
  spec.stats_lse = OptionalArray<float>(object, "statsLse", rows);
  spec.stats_ce = OptionalArray<float>(object, "statsCe", rows);
  spec.stats_kd = OptionalArray<float>(object, "statsKd", rows);
  spec.stats_argmax = OptionalArray<int32_t>(object, "statsArgmax", rows);
  spec.threads = static_cast<int32_t>(NumberField(object, "threads"));
  spec.cancel = OptionalArray<int32_t>(object, "cancel", 1);
  if (spec.reduction == Reduction::kNone && spec.row_loss == nullptr) {
    throw CodedError("ERR_SDVP_ARG", "rowLoss is required for reduction 'none'");
  }
  return spec;
}

Napi::Object ResultObject(Napi::Env env, const DistillLossResult& result) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("status", static_cast<int32_t>(result.status));
  out.Set("loss", result.loss);
  out.Set("normalizer", result.normalizer);
  out.Set("validRows", static_cast<double>(result.valid_rows));
  out.Set("badRow", static_cast<double>(result.bad_row));
  out.Set("badValue", static_cast<double>(result.bad_value));
  return out;
}

Napi::Value DistillLossSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject())
      throw CodedError("ERR_SDVP_ARG", "distillLoss(spec) takes an object");
    DistillLossSpec spec = ReadSpec(info[0].As<Napi::Object>());
    return ResultObject(env, distill_loss_cpu(spec));
  });
}

// Runs the kernel on a libuv worker thread; the spec object (and so every typed array it holds) is
// kept alive by a persistent reference until the promise settles.
class DistillLossWorker : public Napi::AsyncWorker {
 public:
  DistillLossWorker(Napi::Env env, Napi::Object spec_object, const DistillLossSpec& spec)
      : Napi::AsyncWorker(env, "sdvp:distillLoss"),
        deferred_(Napi::Promise::Deferred::New(env)),
        spec_ref_(Napi::Persistent(spec_object)),
        spec_(spec) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = distill_loss_cpu(spec_);
    } catch (const std::exception& error) {
      SetError(error.what());
    }
  }

  void OnOK() override { deferred_.Resolve(ResultObject(Env(), result_)); }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(MakeError(Env(), "ERR_SDVP_NATIVE", error.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference spec_ref_;
  DistillLossSpec spec_;
  DistillLossResult result_;
};

Napi::Value DistillLossAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw CodedError("ERR_SDVP_ARG", "distillLossAsync(spec) takes an object");
    }
    Napi::Object object = info[0].As<Napi::Object>();
    DistillLossSpec spec = ReadSpec(object);
    auto* worker = new DistillLossWorker(env, object, spec);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

void RegisterDistillLoss(Napi::Env env, Napi::Object exports) {
  exports.Set("distillLoss", Napi::Function::New(env, DistillLossSync, "distillLoss"));
  exports.Set("distillLossAsync", Napi::Function::New(env, DistillLossAsync, "distillLossAsync"));
}

}  // namespace sdvp::addon
