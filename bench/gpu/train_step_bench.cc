// The sdvp side of the GPU train-step benchmark (bench/gpu/run.sh): the built-in tiny-vlm student
// with a `vocab`-answer head, trained on `device` (CE + tau^2 KL to a dense teacher, AdamW)
//   1. through the LibTorch runtime's public Model::train_step: host arrays in, the fused objective
//      in autograd, sdvp's optimizer, one synchronous step;
//   2. with the same TorchScript file loaded by LibTorch, its inputs already on the device, the
//   fused
//      objective (fused_distill_loss) and torch::optim::AdamW: the fused loss in a step otherwise
//      like the Python one;
// then the fused objective alone (forward and backward on a [batch, vocab] leaf, its inputs already
// on the device). It also writes the model as TorchScript and the batch, so that
// bench/gpu/check_and_time.py trains the same model from Python with eager and compiled losses.
// Prints one JSON line.
//
//   sdvp_train_step_bench --dir DIR [--device cuda] [--batch 256] [--vocab 32000] [--steps 30]
//                         [--warmup 5] [--loss-runs 50]
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fused_loss_function.h"
#include "torch_info.h"
#include "torch_runtime.h"

#ifdef SDVP_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace {

using sdvp::torch_runtime::ElementType;
using sdvp::torch_runtime::HostTensor;

constexpr int64_t kImage = 32;
constexpr int64_t kTokens = 16;
constexpr int64_t kTokenVocab = 1000;
constexpr float kCeWeight = 0.5f, kKdWeight = 0.5f, kTemperature = 2.0f;
constexpr double kLr = 1e-3, kWeightDecay = 0.01;

struct Options {
  std::string dir;
  std::string device = "cuda";
  int64_t batch = 256, vocab = 32000;
  int steps = 30, warmup = 5, loss_runs = 50;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("option " + flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--dir") {
      o.dir = value;
    } else if (flag == "--device") {
      o.device = value;
    } else if (flag == "--batch") {
      o.batch = std::stoll(value);
    } else if (flag == "--vocab") {
      o.vocab = std::stoll(value);
    } else if (flag == "--steps") {
      o.steps = std::stoi(value);
    } else if (flag == "--warmup") {
      o.warmup = std::stoi(value);
    } else if (flag == "--loss-runs") {
      o.loss_runs = std::stoi(value);
    } else {
      throw std::invalid_argument("unknown option " + flag);
    }
  }
  if (o.dir.empty()) throw std::invalid_argument("--dir is required");
  if (o.batch < 1 || o.vocab < 2 || o.steps < 1 || o.warmup < 0 || o.loss_runs < 1)
    throw std::invalid_argument("batch >= 1, vocab >= 2, steps >= 1, warmup >= 0, loss-runs >= 1");
  return o;
}

// The same generator as bench/train-step.bench.ts, so the batch does not depend on a library.
struct Lcg {
  uint32_t state = 12345;
  double next() {
    state = state * 1103515245u + 12345u;
    return state / 4294967296.0;
  }
};

template <typename T>
HostTensor host_tensor(ElementType type, std::vector<int64_t> shape, const std::vector<T>& values) {
  HostTensor t;
  t.type = type;
  t.shape = std::move(shape);
  t.bytes = std::make_shared<std::vector<uint8_t>>(values.size() * sizeof(T));
  std::memcpy(t.bytes->data(), values.data(), t.bytes->size());
  return t;
}

void write_file(const std::string& path, const HostTensor& t) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(t.bytes->data()),
            static_cast<std::streamsize>(t.bytes->size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// A request's host tensor on `device` as `type` (a copy).
at::Tensor request_tensor(const HostTensor& host, const c10::Device& device, c10::ScalarType type) {
  const c10::ScalarType stored =
      host.type == ElementType::kInt32 ? at::kInt : at::kFloat;  // the two types this harness makes
  return at::from_blob(host.bytes->data(), host.shape, at::TensorOptions().dtype(stored))
      .to(device, type);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.6g", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

// Blocks until the device's queued work is done (a no-op on the CPU).
void synchronize(const c10::Device& device) {
#ifdef SDVP_TORCH_CUDA
  if (device.is_cuda()) {
    const cudaError_t err =
        cudaStreamSynchronize(c10::cuda::getCurrentCUDAStream(device.index()).stream());
    if (err != cudaSuccess) throw std::runtime_error(cudaGetErrorString(err));
  }
#endif
  (void)device;
}

// Milliseconds of fn() on `device`: CUDA events on the current stream for CUDA, else a host clock.
template <class F>
double timed_ms(const c10::Device& device, F&& fn) {
#ifdef SDVP_TORCH_CUDA
  if (device.is_cuda()) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
    cudaEvent_t start, end;
    if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&end) != cudaSuccess)
      throw std::runtime_error("cudaEventCreate failed");
    cudaEventRecord(start, stream);
    fn();
    cudaEventRecord(end, stream);
    cudaEventSynchronize(end);
    float ms = 0;
    const cudaError_t err = cudaEventElapsedTime(&ms, start, end);
    cudaEventDestroy(start);
    cudaEventDestroy(end);
    if (err != cudaSuccess) throw std::runtime_error(cudaGetErrorString(err));
    return ms;
  }
#endif
  (void)device;
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

int run(const Options& o) {
  using namespace sdvp::torch_runtime;
  if (o.device != "cpu" && !libtorch_cuda_available())
    throw std::runtime_error("LibTorch " + libtorch_version() + " sees no CUDA device");
  ArchitectureConfig config;
  config.architecture = "tiny-vlm";
  config.image_size = kImage;
  config.max_tokens = kTokens;
  config.seed = 1;
  config.token_vocab.push_back("<pad>");
  for (int64_t i = 1; i < kTokenVocab; ++i) config.token_vocab.push_back("t" + std::to_string(i));
  for (int64_t i = 0; i < o.vocab; ++i) config.answer_vocab.push_back("a" + std::to_string(i));
  auto model = Model::create(config, o.device);
  model->save(o.dir + "/model.pt");

  const int64_t rows = o.batch;
  Lcg random;
  std::vector<float> images(static_cast<size_t>(rows * 3 * kImage * kImage));
  for (float& x : images) x = static_cast<float>(random.next());
  std::vector<int32_t> tokens(static_cast<size_t>(rows * kTokens));
  for (int32_t& x : tokens) x = 1 + static_cast<int32_t>(random.next() * (kTokenVocab - 1));
  std::vector<int32_t> labels(static_cast<size_t>(rows));
  for (int32_t& x : labels) x = static_cast<int32_t>(random.next() * static_cast<double>(o.vocab));
  std::vector<float> teacher(static_cast<size_t>(rows * o.vocab));
  for (float& x : teacher) x = static_cast<float>((random.next() - 0.5) * 6);

  TrainStepRequest request;
  request.method = "answer";
  request.inputs.push_back(host_tensor(ElementType::kFloat32, {rows, 3, kImage, kImage}, images));
  request.inputs.push_back(host_tensor(ElementType::kInt32, {rows, kTokens}, tokens));
  ObjectiveOptions& objective = request.objective;
  objective.teacher_kind = sdvp::TeacherKind::kDense;
  objective.teacher_logits = host_tensor(ElementType::kFloat32, {rows, o.vocab}, teacher);
  objective.labels = host_tensor(ElementType::kInt32, {rows}, labels);
  objective.ce_weight = kCeWeight;
  objective.kd_weight = kKdWeight;
  objective.temperature = kTemperature;
  OptimizerConfig optimizer;
  optimizer.lr = kLr;
  optimizer.weight_decay = kWeightDecay;
  request.optimizer = optimizer;

  write_file(o.dir + "/images.bin", request.inputs[0]);
  write_file(o.dir + "/tokens.bin", request.inputs[1]);
  write_file(o.dir + "/labels.bin", objective.labels);
  write_file(o.dir + "/teacher.bin", objective.teacher_logits);
  {
    std::ofstream meta(o.dir + "/meta.json");
    meta << "{\"rows\": " << rows << ", \"imageSize\": " << kImage << ", \"tokens\": " << kTokens
         << ", \"vocab\": " << o.vocab << ", \"ceWeight\": " << kCeWeight
         << ", \"kdWeight\": " << kKdWeight << ", \"temperature\": " << kTemperature
         << ", \"lr\": " << kLr << ", \"weightDecay\": " << kWeightDecay << "}\n";
  }

  // The product path: host arrays in, one synchronous step out (its result carries the loss).
  for (int i = 0; i < o.warmup; ++i) model->train_step(request);
  std::vector<double> step_ms, losses;
  for (int i = 0; i < o.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const TrainStepResult result = model->train_step(request);
    step_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    losses.push_back(result.loss);
  }

  // The fused objective in a LibTorch step with every input already on the device.
  const c10::Device device(o.device);
  FusedObjective fused = make_objective(objective, 0, rows);
  fused.teacher_logits = fused.teacher_logits.to(device);
  fused.labels = fused.labels.to(device);
  std::vector<double> device_step_ms;
  {
    torch::jit::Module module = torch::jit::load(o.dir + "/model.pt", device);
    module.train();
    std::vector<at::Tensor> parameters;
    for (const at::Tensor& parameter : module.parameters()) parameters.push_back(parameter);
    torch::optim::AdamW adamw(parameters,
                              torch::optim::AdamWOptions(kLr).weight_decay(kWeightDecay));
    const at::Tensor images_on = request_tensor(request.inputs[0], device, at::kFloat);
    const at::Tensor tokens_on = request_tensor(request.inputs[1], device, at::kLong);
    torch::jit::Method answer = module.get_method("answer");
    auto step = [&] {
      adamw.zero_grad();
      const at::Tensor logits = answer({images_on, tokens_on}).toTensor();
      fused_distill_loss(logits, fused)[0].backward();
      adamw.step();
      synchronize(device);
    };
    for (int i = 0; i < o.warmup; ++i) step();
    for (int i = 0; i < o.steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      step();
      device_step_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }

  // The fused objective alone, its inputs already on the device.
  at::Tensor logits =
      (at::randn({rows, o.vocab}, at::TensorOptions().device(device)) * 2).requires_grad_(true);
  std::vector<double> loss_ms;
  for (int i = 0; i < o.warmup + o.loss_runs; ++i) {
    logits.mutable_grad() = at::Tensor();
    const double ms = timed_ms(device, [&] {
      const auto outputs = fused_distill_loss(logits, fused);
      outputs[0].backward();
    });
    if (i >= o.warmup) loss_ms.push_back(ms);
  }

  const int64_t h2d = static_cast<int64_t>(images.size() * 4 + tokens.size() * 4 +
                                           labels.size() * 4 + teacher.size() * 4);
  std::printf(
      "{\"libtorch\": \"%s\", \"device\": \"%s\", \"batch\": %lld, \"vocab\": %lld, "
      "\"hostBytesPerStep\": %lld, \"stepMsMedian\": %.6g, \"deviceStepMsMedian\": %.6g, "
      "\"lossAloneMsMedian\": %.6g, \"stepMs\": %s, \"deviceStepMs\": %s, \"lossAloneMs\": %s, "
      "\"losses\": %s}\n",
      libtorch_version().c_str(), o.device.c_str(), static_cast<long long>(rows),
      static_cast<long long>(o.vocab), static_cast<long long>(h2d), median(step_ms),
      median(device_step_ms), median(loss_ms), json_array(step_ms).c_str(),
      json_array(device_step_ms).c_str(), json_array(loss_ms).c_str(), json_array(losses).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::string message = e.what();
    for (char& c : message) {
      if (c == '"' || c == '\\' || c == '\n') c = ' ';
    }
    std::printf("{\"error\": \"%s\"}\n", message.c_str());
    return 1;
  }
}
