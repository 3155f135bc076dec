// The built-in architectures, defined as TorchScript source in this project and initialised
// natively (Kaiming-normal weights from a seeded generator). Each meets the model contract of
// DESIGN.md:
//
// - "tiny-vlm" (student): a convolutional image encoder pooled to a grid_size x grid_size grid of
// cells,
//   a token embedding of the question (mean over non-padding tokens, with learned positions), and
//   - ground(images[B,3,H,W], tokens[B,L]) -> [B, G]: scores over the G = grid_size^2 cells for the
//   query;
//   - answer(images, tokens) -> [B, A]: the cells pooled by softmax(ground), fused with the query
//     (concat of pooled, query and their product, one hidden layer) into logits over answer_vocab;
//   - forward = answer; attributes token_vocab (index 0 is the padding token), answer_vocab,
//   grid_size.
// - "transformer-vlm" (student): the same encoder's cells and the question's tokens, with a summary
//   token, through pre-norm transformer blocks; answer(images, tokens) -> [B, A] from the summary
//   token, ground(images, tokens) -> [B, G + 1]: each cell's match with the summary, then "nothing
//   matches".
// - "cnn-classifier" (teacher for image crops): encoder, global average pool, one hidden layer;
//   forward(images) -> [B, K] over `labels`; features(images) -> [B, C].
// - "grid-detector" (teacher for localisation): encoder pooled to grid cells, a per-cell head
// giving an
//   objectness score and one score per label; detect(images) -> [B, G] (objectness),
//   detect_classes(images) -> [B, K, G], forward(images) -> [B, K] (logsumexp over cells), and
//   locate(images, query[B]) -> [B, G + 1]: the cells' scores for query 0 (any object) or 1 + a
//   label index, then a "nothing matches" score (the grounding layout of lib/models/grounding.ts).
#pragma once

#include <torch/script.h>

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

// Builds a freshly initialised module on the CPU. Throws RuntimeError(ERR_SDVP_OPTION) for an
// unknown architecture or an impossible configuration.
torch::jit::Module build_architecture(const ArchitectureConfig& config);

}  // namespace sdvp::torch_runtime
