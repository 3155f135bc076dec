// Builds the built-in architectures: layer modules and the models' methods are TorchScript source
// compiled with Module::define; parameters are registered and initialised here from a seeded
// generator.
#include "builtin_architectures.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>
#include <string>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

namespace {

using torch::jit::Module;

// Everything one build shares: the compilation unit its types live in and the random generator.
struct Builder {
  std::shared_ptr<torch::jit::CompilationUnit> unit =
      std::make_shared<torch::jit::CompilationUnit>();
  at::Generator generator;

  explicit Builder(uint64_t seed) : generator(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  Module module(const std::string& type_name) {
    Module m(c10::QualifiedName("__torch__.sdvp." + type_name), unit, /*shouldMangle=*/true);
    m.register_attribute("training", c10::BoolType::get(), true);
    return m;
  }

  at::Tensor normal(at::IntArrayRef shape, double std) {
    return at::empty(shape, at::kFloat).normal_(0.0, std, generator);
  }
};

// A parameter: a leaf tensor that requires grad, as nn.Parameter makes it.
at::Tensor parameter(at::Tensor tensor) { return tensor.set_requires_grad(true); }

const char* const kConvSource = R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.conv2d(x, self.weight, self.bias, [self.stride, self.stride], [self.padding, self.padding])
)";

const char* const kLinearSource = R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.linear(x, self.weight, self.bias)
)";

const char* const kEmbeddingSource = R"(
def forward(self, tokens: Tensor) -> Tensor:
    return torch.embedding(self.weight, tokens, 0)
)";

// A 3x3 (or k x k) convolution, Kaiming-normal for a ReLU that follows.
Module conv2d(Builder& b, int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  Module m = b.module("Conv2d");
  m.register_parameter(
      "weight",
      parameter(b.normal({out, in, kernel, kernel},
                         std::sqrt(2.0 / static_cast<double>(in * kernel * kernel)))),
      false);
  m.register_parameter("bias", parameter(at::zeros({out})), false);
  m.register_attribute("stride", c10::IntType::get(), stride);
  m.register_attribute("padding", c10::IntType::get(), kernel / 2);
  m.define(kConvSource);
  return m;
}

// A linear layer; `gain` 2 for one followed by a ReLU (Kaiming), 1 for an output head.
Module linear(Builder& b, int64_t in, int64_t out, double gain) {
  Module m = b.module("Linear");
  m.register_parameter(
      "weight", parameter(b.normal({out, in}, std::sqrt(gain / static_cast<double>(in)))), false);
  m.register_parameter("bias", parameter(at::zeros({out})), false);
  m.define(kLinearSource);
  return m;
}

Module embedding(Builder& b, int64_t count, int64_t dim) {
  Module m = b.module("Embedding");
  at::Tensor weight = b.normal({count, dim}, 1.0 / std::sqrt(static_cast<double>(dim)));
  weight[0].zero_();  // the padding token
  m.register_parameter("weight", parameter(weight), false);
  m.define(kEmbeddingSource);
  return m;
}

// Convolutions conv1..convN with ReLUs and the given strides (by default the first keeps the
// resolution and the others halve it).
Module conv_encoder(Builder& b, const std::vector<int64_t>& channels,
                    const std::vector<int64_t>& strides) {
  Module m = b.module("ConvEncoder");
  std::string body = "def forward(self, x: Tensor) -> Tensor:\n";
  int64_t in = 3;
  for (size_t i = 0; i < channels.size(); ++i) {
    const std::string name = "conv" + std::to_string(i + 1);
    const int64_t stride = i < strides.size() ? strides[i] : (i == 0 ? 1 : 2);
    m.register_module(name, conv2d(b, in, channels[i], 3, stride));
    body += "    x = torch.relu(self." + name + ".forward(x))\n";
    in = channels[i];
  }
  body += "    return x\n";
  m.define(body);
  return m;
}

void register_strings(Module& m, const std::string& name, const std::vector<std::string>& values) {
  c10::List<std::string> list;
  for (const std::string& value : values) list.push_back(value);
  m.register_attribute(name, c10::ListType::ofStrings(), list);
}

void register_common(Module& m, const ArchitectureConfig& config) {
  m.register_attribute("architecture", c10::StringType::get(), config.architecture);
  m.register_attribute("config", c10::StringType::get(),
                       config.config_json.empty() ? "{}" : config.config_json);
}

void require(bool condition, const std::string& message) {
  if (!condition) throw RuntimeError("ERR_SDVP_OPTION", message);
}

// What both students share, registered in this order (it fixes the draws from the seeded
// generator): the convolutional encoder and its projection to cells with learned cell positions,
// the token embedding and learned token positions.
void register_student_inputs(Builder& b, Module& m, const ArchitectureConfig& c) {
  const int64_t cells = c.grid_size * c.grid_size;
  m.register_module("encoder", conv_encoder(b, c.channels, c.strides));
  m.register_module("cell_proj", linear(b, c.channels.back(), c.dim, 1.0));
  m.register_parameter("cell_position", parameter(b.normal({cells, c.dim}, 0.02)), false);
  m.register_module("token_embedding",
                    embedding(b, static_cast<int64_t>(c.token_vocab.size()), c.dim));
  m.register_parameter("position_embedding", parameter(b.normal({c.max_tokens, c.dim}, 0.02)),
                       false);
}

// The students' plain attributes: vocabularies, sizes, the grounding scale and the recorded config.
void register_student_attributes(Module& m, const ArchitectureConfig& c) {
  register_strings(m, "token_vocab", c.token_vocab);
  register_strings(m, "answer_vocab", c.answer_vocab);
  m.register_attribute("grid_size", c10::IntType::get(), c.grid_size);
  m.register_attribute("max_tokens", c10::IntType::get(), c.max_tokens);
  m.register_attribute("image_size", c10::IntType::get(), c.image_size);
  m.register_attribute("scale", c10::FloatType::get(), 1.0 / std::sqrt(static_cast<double>(c.dim)));
  register_common(m, c);
}

const char* const kTinyVlmSource = R"(
def _cells(self, images: Tensor) -> Tensor:
    x = self.encoder.forward(images)
    x = torch.adaptive_avg_pool2d(x, [self.grid_size, self.grid_size])
    x = torch.flatten(x, 2).transpose(1, 2)
    return self.cell_proj.forward(x) + self.cell_position

def _query(self, tokens: Tensor) -> Tensor:
    tokens = tokens[:, :self.max_tokens]
    mask = torch.ne(tokens, 0).float().unsqueeze(2)
    embedded = self.token_embedding.forward(tokens) + self.position_embedding[:tokens.size(1)].unsqueeze(0)
    pooled = (embedded * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return torch.relu(self.query_proj.forward(pooled))

def _scores(self, cells: Tensor, query: Tensor) -> Tensor:
    return torch.bmm(cells, query.unsqueeze(2)).squeeze(2) * self.scale

def ground(self, images: Tensor, tokens: Tensor) -> Tensor:
    return self._scores(self._cells(images), self._query(tokens))

def answer(self, images: Tensor, tokens: Tensor) -> Tensor:
    cells = self._cells(images)
    query = self._query(tokens)
    attention = torch.softmax(self._scores(cells, query), 1)
    pooled = torch.bmm(attention.unsqueeze(1), cells).squeeze(1)
    fused = torch.relu(self.fuse.forward(torch.cat([pooled, query, pooled * query], 1)))
    return self.answer_head.forward(fused)

def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
    return self.answer(images, tokens)
)";

Module tiny_vlm(Builder& b, const ArchitectureConfig& c) {
  require(c.token_vocab.size() >= 2,
          "tiny-vlm needs a token vocabulary of at least 2 entries (index 0 pads)");
  require(!c.answer_vocab.empty(), "tiny-vlm needs a non-empty answer vocabulary");
  require(c.dim > 0 && c.hidden > 0 && c.grid_size > 0 && c.max_tokens > 0,
          "tiny-vlm sizes must be positive");
  Module m = b.module("TinyVLM");
  register_student_inputs(b, m, c);
  m.register_module("query_proj", linear(b, c.dim, c.dim, 2.0));
  m.register_module("fuse", linear(b, 3 * c.dim, c.hidden, 2.0));
  m.register_module("answer_head",
                    linear(b, c.hidden, static_cast<int64_t>(c.answer_vocab.size()), 1.0));
  register_student_attributes(m, c);
  m.define(kTinyVlmSource);
  return m;
}

const char* const kLayerNormSource = R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.layer_norm(x, [self.dim], self.weight, self.bias, 1e-5)
)";

Module layer_norm(Builder& b, int64_t dim) {
  Module m = b.module("LayerNorm");
  m.register_parameter("weight", parameter(at::ones({dim})), false);
  m.register_parameter("bias", parameter(at::zeros({dim})), false);
  m.register_attribute("dim", c10::IntType::get(), dim);
  m.define(kLayerNormSource);
  return m;
}

// A pre-norm transformer block: multi-head self-attention over the tokens `keep` marks, then a GELU
// MLP. Queries, keys and values come from three projections (contiguous outputs, so the batched
// matrix products need no copies); with one head no reshaping happens at all, which on small CPU
// batches is several times faster than splitting into narrow heads.
const char* const kBlockSource = R"(
def _split(self, x: Tensor) -> Tensor:
    batch = x.size(0)
    length = x.size(1)
    return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2).reshape(batch * self.heads, length, self.head_dim)

def forward(self, x: Tensor, keep: Tensor) -> Tensor:
    batch = x.size(0)
    length = x.size(1)
    h = self.norm1.forward(x)
    q = self.q_proj.forward(h) * self.attention_scale
    k = self.k_proj.forward(h)
    v = self.v_proj.forward(h)
    masked = keep.logical_not().unsqueeze(1)
    if self.heads == 1:
        scores = torch.bmm(q, k.transpose(1, 2)).masked_fill(masked, -1.0e9)
        attended = torch.bmm(torch.softmax(scores, 2), v)
    else:
        scores = torch.bmm(self._split(q), self._split(k).transpose(1, 2))
        scores = scores.view(batch, self.heads, length, length).masked_fill(masked.unsqueeze(1), -1.0e9)
        mixed = torch.bmm(torch.softmax(scores, 3).view(batch * self.heads, length, length), self._split(v))
        attended = mixed.view(batch, self.heads, length, self.head_dim).transpose(1, 2).reshape(batch, length, self.dim)
    x = x + self.proj.forward(attended)
    return x + self.fc2.forward(torch.gelu(self.fc1.forward(self.norm2.forward(x))))
)";

Module transformer_block(Builder& b, int64_t dim, int64_t heads, int64_t hidden, int64_t layers) {
  Module m = b.module("TransformerBlock");
  m.register_module("norm1", layer_norm(b, dim));
  m.register_module("q_proj", linear(b, dim, dim, 1.0));
  m.register_module("k_proj", linear(b, dim, dim, 1.0));
  m.register_module("v_proj", linear(b, dim, dim, 1.0));
  // Residual branches start small (GPT-2's 1/sqrt(2 * layers) scaling), so a deep stack starts near
  // identity.
  const double residual_gain = 1.0 / (2.0 * static_cast<double>(layers));
  m.register_module("proj", linear(b, dim, dim, residual_gain));
  m.register_module("norm2", layer_norm(b, dim));
  m.register_module("fc1", linear(b, dim, hidden, 2.0));
  m.register_module("fc2", linear(b, hidden, dim, residual_gain));
  m.register_attribute("dim", c10::IntType::get(), dim);
  m.register_attribute("heads", c10::IntType::get(), heads);
  m.register_attribute("head_dim", c10::IntType::get(), dim / heads);
  m.register_attribute("attention_scale", c10::FloatType::get(),
                       1.0 / std::sqrt(static_cast<double>(dim / heads)));
  m.define(kBlockSource);
  return m;
}

// The transformer student: convolutional patch embeddings pooled to grid cells, question tokens and
// a summary token through pre-norm transformer blocks; answer from the summary token, ground as
// each cell's match with the summary plus a "nothing matches" score.
std::string transformer_vlm_source(int64_t layers) {
  std::string blocks;
  for (int64_t i = 1; i <= layers; ++i) {
    blocks += "    x = self.block" + std::to_string(i) + ".forward(x, keep)\n";
  }
  return R"(
def _cells(self, images: Tensor) -> Tensor:
    x = self.encoder.forward(images)
    x = torch.adaptive_avg_pool2d(x, [self.grid_size, self.grid_size])
    x = torch.flatten(x, 2).transpose(1, 2)
    return self.cell_proj.forward(x) + self.cell_position

def _encode(self, images: Tensor, tokens: Tensor) -> Tensor:
    tokens = tokens[:, :self.max_tokens]
    batch = tokens.size(0)
    text = self.token_embedding.forward(tokens) + self.position_embedding[:tokens.size(1)].unsqueeze(0)
    cells = self._cells(images)
    summary = self.summary_token.unsqueeze(0).expand(batch, 1, self.dim)
    x = torch.cat([summary, text, cells], 1)
    always = torch.ge(tokens[:, :1], 0)  # True: the summary and the cells are always attended to
    keep = torch.cat([always, torch.ne(tokens, 0), always.expand(batch, cells.size(1))], 1)
)" + blocks +
         R"(    return self.final_norm.forward(x)

def answer(self, images: Tensor, tokens: Tensor) -> Tensor:
    x = self._encode(images, tokens)
    return self.answer_head.forward(x.select(1, 0))

def ground(self, images: Tensor, tokens: Tensor) -> Tensor:
    x = self._encode(images, tokens)
    cells = x[:, x.size(1) - self.grid_size * self.grid_size:]
    summary = x.select(1, 0)
    scores = torch.bmm(cells, self.ground_query.forward(summary).unsqueeze(2)).squeeze(2) * self.scale
    return torch.cat([scores, self.absent_head.forward(summary)], 1)

def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
    return self.answer(images, tokens)
)";
}

Module transformer_vlm(Builder& b, const ArchitectureConfig& c) {
  require(c.token_vocab.size() >= 2,
          "transformer-vlm needs a token vocabulary of at least 2 entries (index 0 pads)");
  require(!c.answer_vocab.empty(), "transformer-vlm needs a non-empty answer vocabulary");
  require(c.dim > 0 && c.hidden > 0 && c.grid_size > 0 && c.max_tokens > 0 && c.layers > 0 &&
              c.heads > 0,
          "transformer-vlm sizes must be positive");
  require(c.dim % c.heads == 0, "transformer-vlm's dim must be a multiple of heads");
  Module m = b.module("TransformerVLM");
  register_student_inputs(b, m, c);
  m.register_parameter("summary_token", parameter(b.normal({1, c.dim}, 0.02)), false);
  for (int64_t i = 1; i <= c.layers; ++i) {
    m.register_module("block" + std::to_string(i),
                      transformer_block(b, c.dim, c.heads, c.hidden, c.layers));
  }
  m.register_module("final_norm", layer_norm(b, c.dim));
  m.register_module("answer_head",
                    linear(b, c.dim, static_cast<int64_t>(c.answer_vocab.size()), 1.0));
  m.register_module("ground_query", linear(b, c.dim, c.dim, 1.0));
  m.register_module("absent_head", linear(b, c.dim, 1, 1.0));
  m.register_attribute("dim", c10::IntType::get(), c.dim);
  register_student_attributes(m, c);
  m.define(transformer_vlm_source(c.layers));
  return m;
}

const char* const kClassifierSource = R"(
def features(self, images: Tensor) -> Tensor:
    return torch.mean(self.encoder.forward(images), [2, 3])

def forward(self, images: Tensor) -> Tensor:
    return self.head.forward(torch.relu(self.fc.forward(self.features(images))))
)";

Module cnn_classifier(Builder& b, const ArchitectureConfig& c) {
  require(!c.labels.empty(), "cnn-classifier needs at least one label");
  require(c.hidden > 0, "cnn-classifier's hidden size must be positive");
  Module m = b.module("CnnClassifier");
  m.register_module("encoder", conv_encoder(b, c.channels, c.strides));
  m.register_module("fc", linear(b, c.channels.back(), c.hidden, 2.0));
  m.register_module("head", linear(b, c.hidden, static_cast<int64_t>(c.labels.size()), 1.0));
  register_strings(m, "labels", c.labels);
  m.register_attribute("image_size", c10::IntType::get(), c.image_size);
  register_common(m, c);
  m.define(kClassifierSource);
  return m;
}

const char* const kDetectorSource = R"(
def _cell_scores(self, images: Tensor) -> Tensor:
    x = self.encoder.forward(images)
    x = torch.adaptive_avg_pool2d(x, [self.grid_size, self.grid_size])
    x = torch.flatten(x, 2).transpose(1, 2)
    hidden = torch.relu(self.cell_hidden.forward(x) + self.cell_position)
    return self.cell_head.forward(hidden)

def detect(self, images: Tensor) -> Tensor:
    return self._cell_scores(images).select(2, 0)

def detect_classes(self, images: Tensor) -> Tensor:
    return self._cell_scores(images)[:, :, 1:].transpose(1, 2)

def forward(self, images: Tensor) -> Tensor:
    return torch.logsumexp(self.detect_classes(images), [2])

def locate(self, images: Tensor, query: Tensor) -> Tensor:
    x = self.encoder.forward(images)
    x = torch.adaptive_avg_pool2d(x, [self.grid_size, self.grid_size])
    x = torch.flatten(x, 2).transpose(1, 2)
    hidden = torch.relu(self.cell_hidden.forward(x) + self.cell_position)
    scores = self.cell_head.forward(hidden)
    index = query.view(-1, 1, 1).expand(scores.size(0), scores.size(1), 1)
    cells = torch.gather(scores, 2, index).squeeze(2)
    absent = torch.gather(self.absent_head.forward(hidden.mean(1)), 1, query.view(-1, 1))
    return torch.cat([cells, absent], 1)
)";

Module grid_detector(Builder& b, const ArchitectureConfig& c) {
  require(!c.labels.empty(), "grid-detector needs at least one label");
  require(c.hidden > 0 && c.grid_size > 0, "grid-detector sizes must be positive");
  const int64_t cells = c.grid_size * c.grid_size;
  Module m = b.module("GridDetector");
  m.register_module("encoder", conv_encoder(b, c.channels, c.strides));
  m.register_module("cell_hidden", linear(b, c.channels.back(), c.hidden, 2.0));
  m.register_parameter("cell_position", parameter(b.normal({cells, c.hidden}, 0.02)), false);
  m.register_module("cell_head",
                    linear(b, c.hidden, static_cast<int64_t>(c.labels.size()) + 1, 1.0));
  m.register_module("absent_head",
                    linear(b, c.hidden, static_cast<int64_t>(c.labels.size()) + 1, 1.0));
  register_strings(m, "labels", c.labels);
  m.register_attribute("grid_size", c10::IntType::get(), c.grid_size);
  m.register_attribute("image_size", c10::IntType::get(), c.image_size);
  register_common(m, c);
  m.define(kDetectorSource);
  return m;
}

}  // namespace

torch::jit::Module build_architecture(const ArchitectureConfig& config) {
  require(!config.channels.empty(), "channels must list at least one convolution width");
  for (int64_t width : config.channels) require(width > 0, "every channel width must be positive");
  require(config.strides.empty() || config.strides.size() == config.channels.size(),
          "strides must be empty or give one stride per convolution");
  for (int64_t stride : config.strides)
    require(stride >= 1 && stride <= 8, "strides must be in [1, 8]");
  Builder builder(config.seed);
  if (config.architecture == "tiny-vlm") return tiny_vlm(builder, config);
  if (config.architecture == "transformer-vlm") return transformer_vlm(builder, config);
  if (config.architecture == "cnn-classifier") return cnn_classifier(builder, config);
  if (config.architecture == "grid-detector") return grid_detector(builder, config);
  throw RuntimeError("ERR_SDVP_OPTION",
                     "unknown architecture '" + config.architecture +
                         "' (built in: tiny-vlm, transformer-vlm, cnn-classifier, grid-detector)");
}

}  // namespace sdvp::torch_runtime
