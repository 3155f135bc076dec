// The run area: the distillation run, its config, evaluation, the student's modules, pretraining, the demo.
export {
  type RunConfig,
  type RunConfigInput,
  loadRunConfig,
  parseRunConfig,
  runConfigSchema,
} from './config';
export {
  type DistillOptions,
  type DistillProgress,
  type DistillResult,
  type RunState,
  type StageReport,
  distill,
} from './distill';
export { type Evaluation, evaluateSubmodules, evaluateSystem } from './evaluate';
export { DEFAULT_STUDENT, type PretrainOptions, pretrainStudent } from './pretrain-student';
export { type DemoOptions, runDemo } from './demo';
export { Student, type StudentView } from './student';
