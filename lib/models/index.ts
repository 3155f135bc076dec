// The models area: TorchScript models in the LibTorch runtime — load, create, run, train, checkpoint.
export { Model, DEFAULT_BUCKET_BYTES } from './model';
export type {
  CallOptions,
  DistributedStepInfo,
  MethodInfo,
  ParameterInfo,
  TrainObjective,
  TrainStepOptions,
  TrainStepResult,
} from './model';
export { loadModel } from './load-model';
export type { LoadModelOptions } from './load-model';
export {
  createModel,
  architectureConfig,
  DEFAULT_ANSWER_VOCAB,
  DEFAULT_LABELS,
  DEFAULT_TOKEN_VOCAB,
} from './create-model';
export type {
  ArchitectureConfigs,
  ArchitectureName,
  CnnClassifierConfig,
  GridDetectorConfig,
  TinyVlmConfig,
  TransformerVlmConfig,
} from './create-model';
export type { AdamWOptions, LrSchedule, OptimizerOptions, ParamGroup, SgdOptions } from './optimizer-options';
export type { NamePattern } from './name-patterns';
export { isTensor, tensor } from './tensors';
export type { ModelValue, OutputTensor, Tensor, TensorData, TensorDType } from './tensors';
export { getThreads, setGraphOptimization, setThreads, torchAvailable } from './torch-runtime';
export { WordTokenizer, splitWords } from './tokenizer';
export {
  DEFAULT_BOX_SCALE,
  type GridLayout,
  type GroundingRuleOptions,
  boxesFromGrid,
  gridTargetFromBoxes,
  groundingWidth,
  layoutFromWidth,
} from './grounding';
export { writeImageRegion } from './image-tensor';
