// The LibTorch runtime's public face, free of torch headers: the structs and the Model class the
// Node addon (and the C++ tests) use to load, create, run, train and save TorchScript models.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "distill_loss.h"

namespace sdvp::torch_runtime {

class ProcessGroup;  // distributed.h

// Element types that cross the boundary. kBFloat16 carries raw bf16 bits (objective teachers only).
enum class ElementType : int32_t {
  kFloat32 = 0,
  kInt32 = 1,
  kInt64 = 2,
  kUInt8 = 3,
  kBool = 4,
  kBFloat16 = 5
};

// Bytes per element of `type`.
size_t element_size(ElementType type);
// "float32", "int32", ...
const char* element_type_name(ElementType type);

// A dense row-major host tensor. `bytes` is shared so a tensor made from it can outlive the
// request.
struct HostTensor {
  ElementType type = ElementType::kFloat32;
  std::vector<int64_t> shape;
  std::shared_ptr<std::vector<uint8_t>>
      bytes;  // numel() * element_size(type) bytes, or null (absent)

  bool present() const { return bytes != nullptr; }
  int64_t numel() const;
};

// A value a model method returns, converted to host data.
struct HostValue {
  enum class Kind { kNone, kTensor, kList, kDict, kBool, kInt, kDouble, kString };
  Kind kind = Kind::kNone;
  HostTensor tensor;
  std::vector<HostValue> items;   // kList (tuple or list), kDict (values)
  std::vector<std::string> keys;  // kDict
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string text;
};

// The fused objective's options: DistillLossSpec without student/rows/vocab/grad, which come from
// the logits a method returns. Arrays are host tensors with `rows` leading entries (the batch).
struct ObjectiveOptions {
  TeacherKind teacher_kind = TeacherKind::kNone;
  HostTensor teacher_logits;  // kDense: [rows, vocab], float32 or bf16 bits
  HostTensor topk_indices;    // kTopK: [rows, k] int32
  HostTensor topk_logprobs;   // kTopK: [rows, k] float32
  int64_t topk = 0;
  TopKMissing topk_missing = TopKMissing::kTailBucket;
  HostTensor labels;  // [rows] int32, or absent
  int32_t ignore_index = -100;
  float ce_weight = 1.0f;
  float kd_weight = 1.0f;
  float temperature = 1.0f;
  bool t2 = true;
  Divergence divergence = Divergence::kForwardKL;
  float jsd_beta = 0.5f;
  float label_smoothing = 0.0f;
  float z_loss = 0.0f;
  HostTensor row_weights;  // [rows] float32, or absent
  Reduction reduction = Reduction::kMean;
  bool has_normalizer = false;
  double normalizer = 1.0;
  float grad_scale = 1.0f;
};

// A parameter group: parameters whose name matches `pattern` (a glob, or an ECMAScript regex) take
// these settings; the first matching group wins; unmatched parameters use the optimizer's defaults.
struct ParamGroupRule {
  std::string pattern;
  bool is_regex = false;
  std::optional<double> lr;
  std::optional<double> weight_decay;
  bool operator==(const ParamGroupRule& other) const;
};

struct ScheduleConfig {
  enum class Kind : int32_t { kConstant = 0, kLinearWarmup = 1, kCosine = 2 };
  Kind kind = Kind::kConstant;
  int64_t warmup_steps = 0;  // linear warm-up from 0 to the base rate over these steps
  int64_t total_steps = 0;   // kCosine: the step at which the rate reaches min_factor * base
  double min_factor = 0.0;   // kCosine: the final fraction of the base rate
  bool operator==(const ScheduleConfig& other) const;
};

struct OptimizerConfig {
  enum class Kind : int32_t { kAdamW = 0, kSGD = 1 };
  Kind kind = Kind::kAdamW;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;  // AdamW
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.0;  // SGD
  double dampening = 0.0;
  bool nesterov = false;
  double max_grad_norm = 0.0;  // > 0: clip the global L2 norm of the gradients to this
  ScheduleConfig schedule;
  std::vector<ParamGroupRule> groups;
  bool operator==(const OptimizerConfig& other) const;
  bool operator!=(const OptimizerConfig& other) const { return !(*this == other); }
};

struct TrainStepRequest {
  std::string method;
  std::vector<HostTensor> inputs;  // each with the batch as its first dimension
  ObjectiveOptions objective;
  std::optional<OptimizerConfig> optimizer;  // configures (or reconfigures) the optimizer first
  int32_t accumulate = 1;                    // micro-batches per step (gradient accumulation)
  const volatile int32_t* cancel = nullptr;  // non-zero: stop between micro-batches, no update
  // Data parallel: the gradients are summed over this group's ranks (each with its own batch)
  // before clipping and the update, with the group's normaliser; the model joins the group (takes
  // rank 0's parameters) on its first such step.
  std::shared_ptr<ProcessGroup> distributed;
  int64_t bucket_bytes = int64_t{25} << 20;  // the gradient all-reduce's flat bucket size
};

struct StepTimings {
  double forward_ms = 0;    // the method's forward pass
  double loss_ms = 0;       // the fused objective: forward (loss and gradient) + its backward node
  double backward_ms = 0;   // backward through the model, the loss node excluded
  double optimizer_ms = 0;  // clipping and the parameter update
  double total_ms = 0;
};

// What a data-parallel step exchanged (world_size 0: a single-process step).
struct DistributedStepInfo {
  int32_t world_size = 0;
  int32_t rank = 0;
  int64_t global_rows = 0;  // the rows of every rank's batch
  int64_t bytes = 0;        // the payload this rank all-reduced (gradients, flags, counts, summary)
  int32_t buckets = 0;      // gradient buckets
  double communication_ms = 0;  // the step summary and the gradient all-reduce, waits included
};

struct TrainStepResult {
  double loss = 0;  // the full batch's loss (the sum over micro-batches, one normalizer)
  double normalizer = 1;
  int64_t valid_rows = 0;
  int64_t rows = 0;
  int64_t vocab = 0;
  std::vector<float> row_loss;  // reduction kNone only
  std::vector<float> lse, ce, kd;
  std::vector<int32_t> argmax;
  double grad_norm = 0;  // global L2 norm before clipping
  bool clipped = false;
  double lr = 0;     // the default group's rate used by this step
  int64_t step = 0;  // optimizer steps taken, this one included
  StepTimings timings;
  DistributedStepInfo distributed;
};

struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
  bool trainable = true;
};

struct MethodInfo {
  std::string name;
  std::vector<std::string> arguments;  // "name: Type", self excluded
  std::string returns;
  std::string schema;
};

// A configuration of a built-in architecture (see builtin_architectures.h for each one's meaning).
struct ArchitectureConfig {
  std::string architecture;  // "tiny-vlm", "transformer-vlm", "cnn-classifier" or "grid-detector"
  std::vector<int64_t> channels{16, 32, 64};
  std::vector<int64_t> strides;  // one per convolution; empty: 1 for the first, 2 for the others
  int64_t image_size = 32;
  int64_t dim = 64;
  int64_t hidden = 128;
  int64_t grid_size = 4;
  int64_t max_tokens = 16;
  int64_t layers = 2;  // transformer-vlm: transformer blocks
  int64_t heads = 4;   // transformer-vlm: attention heads per block
  std::vector<std::string> token_vocab;
  std::vector<std::string> answer_vocab;
  std::vector<std::string> labels;
  uint64_t seed = 0;
  std::string config_json;  // stored verbatim as the module's `config` attribute
};

// A TorchScript module on one device with its training state. Every method is safe to call from any
// thread: runs (call, train_step, save, checkpoints) are serialised by a per-model mutex; the
// description methods (parameters, methods, attributes, set_trainable) only take a short metadata
// lock, so they never wait for a running step.
class Model {
 public:
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Loads a TorchScript file (an sdvp checkpoint restores its optimizer and step too).
  static std::shared_ptr<Model> load_file(const std::string& path, const std::string& device);
  static std::shared_ptr<Model> load_bytes(const std::vector<uint8_t>& bytes,
                                           const std::string& device);
  static std::shared_ptr<Model> create(const ArchitectureConfig& config, const std::string& device);

  // Runs `method` without autograd. batch_size > 0 splits the inputs along dimension 0 into chunks
  // run one after another (the cancel flag is polled between them) and concatenates the outputs.
  HostValue call(const std::string& method, const std::vector<HostTensor>& inputs,
                 int64_t batch_size, const volatile int32_t* cancel);

  // Forward, fused objective, backward, clipping, optimizer step. Transactional: on any error the
  // parameters, the optimizer state and the step counter are as they were.
  TrainStepResult train_step(const TrainStepRequest& request);

  // Joins a process group for data-parallel steps: every rank must call it (or take its first
  // distributed step) at the same point; rank 0's parameters and buffers replace the others'.
  void join_group(const std::shared_ptr<ProcessGroup>& group);
  // Takes part in a data-parallel step this rank cannot run (its request was rejected before it
  // reached the runtime), so every rank skips it instead of waiting for this one until the timeout.
  void abstain_from_step(const std::shared_ptr<ProcessGroup>& group);

  // The values of the parameters and buffers, by name (copies on the host).
  std::vector<std::pair<std::string, HostTensor>> state() const;

  void save(const std::string& path);             // plain TorchScript, written atomically
  void save_checkpoint(const std::string& path);  // TorchScript + optimizer state + step counter
  void load_checkpoint(const std::string& path);  // replaces weights and training state, or nothing

  std::vector<ParameterInfo> parameters() const;
  std::vector<MethodInfo> methods() const;
  std::vector<std::pair<std::string, HostValue>> attributes() const;
  // Sets trainable = `trainable` for every parameter matching any pattern; returns how many
  // matched.
  int64_t set_trainable(const std::vector<ParamGroupRule>& patterns, bool trainable);
  std::string device() const;
  int64_t step() const;
  std::optional<OptimizerConfig> optimizer_config() const;

  struct Impl;  // defined in model_impl.h

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Intra-op threads LibTorch and the CPU kernel use for the runs that follow (0 = LibTorch's
// default).
void set_threads(int32_t threads);
int32_t threads();

// Whether TorchScript's profiling executor optimises graphs (autodiff subgraphs, specialisation)
// after its first runs. Off by default: a method then computes the same numbers on its first run as
// on its thousandth, so a run resumed from a checkpoint in a fresh process takes exactly the step
// the original would have taken. On can be faster for large graphs.
void set_graph_optimization(bool enabled);
bool graph_optimization();

}  // namespace sdvp::torch_runtime
