// C++ tests of the LibTorch runtime without Node: the fused autograd function's gradient against
// LibTorch autograd of log_softmax/kl_div (CPU, and CUDA when present), built-in models, train
// steps, NaN transactionality, checkpoints and save/load. Runs on the GPU machine where Node is
// absent.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <functional>
#include <string>
#include <unistd.h>

#include "fused_loss_function.h"
#include "runtime_error.h"
#include "torch_info.h"
#include "torch_runtime.h"

using namespace sdvp;
using namespace sdvp::torch_runtime;

namespace {

int failures = 0;
int passes = 0;

void check(bool condition, const std::string& what) {
  if (condition) {
    ++passes;
  } else {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

void run(const char* name, const std::function<void()>& body) {
  try {
    body();
    std::printf("ok   %s\n", name);
  } catch (const std::exception& error) {
    ++failures;
    std::printf("FAIL %s: threw %s\n", name, error.what());
  }
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble).cpu();
  const at::Tensor y = b.to(at::kDouble).cpu();
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

HostTensor host_of(const at::Tensor& tensor, ElementType type) {
  at::Tensor t = tensor.contiguous().cpu();
  HostTensor host;
  host.type = type;
  host.shape.assign(t.sizes().begin(), t.sizes().end());
  host.bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(t.nbytes()));
  std::memcpy(host.bytes->data(), t.data_ptr(), t.nbytes());
  return host;
}

// The reference objective with LibTorch ops: alpha*CE(S, y) + beta*tau^2*KL(P_T || P_S), mean over
// rows.
at::Tensor reference_loss(const at::Tensor& student, const at::Tensor& teacher_log_probs_tau,
                          const at::Tensor& labels, double alpha, double beta, double tau) {
  const at::Tensor ce = torch::nll_loss(torch::log_softmax(student, 1), labels.to(at::kLong));
  const at::Tensor log_q = torch::log_softmax(student / tau, 1);
  const at::Tensor kl =
      torch::kl_div(log_q, teacher_log_probs_tau, at::Reduction::None, /*log_target=*/true)
          .sum(1)
          .mean();
  return alpha * ce + beta * tau * tau * kl;
}

void gradient_test(const c10::Device& device, bool topk) {
  torch::manual_seed(7);
  const int64_t rows = 37, vocab = 129, k = 9;
  const double alpha = 0.7, beta = 1.3, tau = 2.0;
  at::Tensor student = torch::randn({rows, vocab}, torch::dtype(at::kFloat).device(device)) * 3;
  at::Tensor labels = torch::randint(0, vocab, {rows}, torch::dtype(at::kInt));
  ObjectiveOptions options;
  options.labels = host_of(labels, ElementType::kInt32);
  options.ce_weight = static_cast<float>(alpha);
  options.kd_weight = static_cast<float>(beta);
  options.temperature = static_cast<float>(tau);
  at::Tensor teacher_log_probs_tau;
  if (!topk) {
    at::Tensor teacher = torch::randn({rows, vocab}) * 2;
    options.teacher_kind = TeacherKind::kDense;
    options.teacher_logits = host_of(teacher, ElementType::kFloat32);
    teacher_log_probs_tau = torch::log_softmax(teacher / tau, 1).to(device);
  } else {
    // Renormalised top-k: P_T is softmax over the k entries' logprob/tau, zero elsewhere.
    at::Tensor teacher = torch::log_softmax(torch::randn({rows, vocab}) * 2, 1);
    auto [values, indices] = teacher.topk(k, 1);
    options.teacher_kind = TeacherKind::kTopK;
    options.topk = k;
    options.topk_missing = TopKMissing::kRenormalize;
    options.topk_indices = host_of(indices.to(at::kInt), ElementType::kInt32);
    options.topk_logprobs = host_of(values, ElementType::kFloat32);
    at::Tensor dense = torch::full({rows, vocab}, -std::numeric_limits<float>::infinity());
    dense.scatter_(1, indices, values / tau);
    teacher_log_probs_tau = torch::log_softmax(dense, 1).to(device);
  }
  FusedObjective objective = make_objective(options, 0, rows);
  at::Tensor leaf = student.clone().requires_grad_(true);
  const auto outputs = fused_distill_loss(leaf, objective);
  outputs[0].backward();

  // Reference in float64; top-k -inf entries: kl_div with log_target gives exp(-inf)*(...) = 0...
  // but -inf - x is -inf, times 0 is nan, so the reference masks those entries.
  at::Tensor ref_leaf = student.to(at::kDouble).clone().requires_grad_(true);
  at::Tensor loss;
  if (!topk) {
    loss = reference_loss(ref_leaf, teacher_log_probs_tau.to(at::kDouble), labels.to(device), alpha,
                          beta, tau);
  } else {
    const at::Tensor log_p = teacher_log_probs_tau.to(at::kDouble);
    const at::Tensor p = log_p.exp();
    const at::Tensor log_q = torch::log_softmax(ref_leaf / tau, 1);
    const at::Tensor kl =
        torch::where(p > 0, p * (log_p - log_q), torch::zeros_like(p)).sum(1).mean();
    const at::Tensor ce =
        torch::nll_loss(torch::log_softmax(ref_leaf, 1), labels.to(device).to(at::kLong));
    loss = alpha * ce + beta * tau * tau * kl;
  }
  loss.backward();
  const double loss_error =
      std::abs(outputs[0].item<double>() - loss.item<double>()) / std::abs(loss.item<double>());
  const double grad_error = relative_error(leaf.grad(), ref_leaf.grad());
  std::printf("     %s %s: loss rel err %.2e, grad rel err %.2e\n", device.str().c_str(),
              topk ? "top-k" : "dense", loss_error, grad_error);
  check(loss_error < 1e-5, "loss matches the LibTorch reference");
  check(grad_error < 1e-5, "gradient matches LibTorch autograd");
}

ArchitectureConfig tiny_config() {
  ArchitectureConfig config;
  config.architecture = "tiny-vlm";
  config.channels = {8, 16};
  config.dim = 32;
  config.hidden = 32;
  config.grid_size = 2;
  config.max_tokens = 6;
  config.token_vocab = {"<pad>", "<unk>", "what", "left", "right", "digit"};
  config.answer_vocab = {"0", "1", "2", "3"};
  config.seed = 3;
  return config;
}

TrainStepRequest tiny_request(int64_t rows, uint64_t seed) {
  torch::manual_seed(seed);
  TrainStepRequest request;
  request.method = "answer";
  request.inputs.push_back(host_of(torch::randn({rows, 3, 16, 16}), ElementType::kFloat32));
  request.inputs.push_back(
      host_of(torch::randint(1, 6, {rows, 6}).to(at::kInt), ElementType::kInt32));
  request.objective.labels =
      host_of(torch::randint(0, 4, {rows}).to(at::kInt), ElementType::kInt32);
  OptimizerConfig optimizer;
  optimizer.lr = 1e-2;
  optimizer.weight_decay = 0.01;
  optimizer.max_grad_norm = 1.0;
  request.optimizer = optimizer;
  return request;
}

at::Tensor answer_output(Model& model, const TrainStepRequest& request) {
  const HostValue value = model.call("answer", request.inputs, 0, nullptr);
  at::Tensor out = at::empty(value.tensor.shape, at::kFloat);
  std::memcpy(out.data_ptr(), value.tensor.bytes->data(), value.tensor.bytes->size());
  return out;
}

}  // namespace

int main() {
  std::printf("LibTorch %s, CUDA available: %d\n", libtorch_version().c_str(),
              libtorch_cuda_available() ? 1 : 0);
  set_threads(2);
  run("dense gradient (cpu)", [] { gradient_test(c10::Device(at::kCPU), false); });
  run("top-k gradient (cpu)", [] { gradient_test(c10::Device(at::kCPU), true); });
#ifdef SDVP_TORCH_CUDA
  if (libtorch_cuda_available()) {
    run("dense gradient (cuda)", [] { gradient_test(c10::Device(at::kCUDA, 0), false); });
    run("top-k gradient (cuda)", [] { gradient_test(c10::Device(at::kCUDA, 0), true); });
  }
#endif

  std::vector<std::string> devices{"cpu"};
  if (libtorch_cuda_available()) devices.push_back("cuda");
  for (const std::string& device : devices) {
    run(("tiny-vlm trains, saves, reloads and resumes on " + device).c_str(), [&] {
      auto model = Model::create(tiny_config(), device);
      const TrainStepRequest request = tiny_request(24, 11);
      const double first = model->train_step(request).loss;
      double last = first;
      for (int i = 0; i < 40; ++i) last = model->train_step(request).loss;
      std::printf("     loss %.4f -> %.4f\n", first, last);
      check(last < first * 0.5, "the loss falls on a memorisable batch");

      const std::string dir = "/tmp/sdvp_torch_tests_" + std::to_string(::getpid());
      std::system(("mkdir -p " + dir).c_str());
      model->save_checkpoint(dir + "/ckpt.pt");
      auto resumed = Model::load_file(dir + "/ckpt.pt", device);
      check(resumed->step() == model->step(), "the step counter is restored");
      const TrainStepRequest next = tiny_request(24, 12);
      const double a = model->train_step(next).loss;
      const double b = resumed->train_step(next).loss;
      check(a == b, "a resumed run takes the same next step");
      // Bit-exact on the CPU; cuDNN's convolution backward may sum in another order on each run.
      const at::Tensor out_a = answer_output(*model, next);
      const at::Tensor out_b = answer_output(*resumed, next);
      check(device == "cpu" ? torch::equal(out_a, out_b) : relative_error(out_b, out_a) < 1e-5,
            "the resumed model's parameters equal the original's after the step");

      // A NaN loss changes nothing.
      const at::Tensor before = answer_output(*model, next);
      TrainStepRequest bad = next;
      at::Tensor images = torch::randn({24, 3, 16, 16});
      images[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
      bad.inputs[0] = host_of(images, ElementType::kFloat32);
      bool threw = false;
      try {
        model->train_step(bad);
      } catch (const RuntimeError& error) {
        threw = error.code() == "ERR_SDVP_NAN_LOSS";
      }
      check(threw, "a NaN loss throws ERR_SDVP_NAN_LOSS");
      check(torch::equal(before, answer_output(*model, next)),
            "a NaN step leaves the parameters unchanged");
      const double c = model->train_step(next).loss;
      const double d = resumed->train_step(next).loss;
      check(device == "cpu" ? c == d : std::abs(c - d) <= 1e-5 * std::abs(d),
            "a NaN step leaves the optimizer state unchanged");
      std::system(("rm -rf " + dir).c_str());
    });
  }
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
