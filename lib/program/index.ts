// The public API of program decomposition: parsers, step graphs, the module registry, the VisProg interpreter, sub-tasks.

export {
  type Diagnostic,
  type DiagnosticCode,
  type DiagnosticSeverity,
  formatDiagnostic,
  hasErrors,
} from './diagnostics';
export { type DecomposeOptions, decomposeProgram, detectFramework } from './decompose';
export {
  type EvalBindings,
  type EvalNode,
  type EvalValue,
  type ParsedEvalExpression,
  evaluateEvalExpression,
  formatEvalValue,
  parseEvalExpression,
  visprogEvalValue,
} from './eval-expression';
export {
  type Box,
  type ImageReference,
  type RasterImage,
  boxInSource,
  createImage,
  cropImage,
  imageDigest,
  imageReference,
  isRasterImage,
  pixelAt,
} from './image';
export {
  type ModuleCallContext,
  type ModuleImplementation,
  type VisProgInterpreterOptions,
  type VisProgJob,
  type VisProgRunOptions,
  VisProgInterpreter,
  runVisProgProgram,
} from './interpreter';
export {
  type ArgumentForm,
  type ArgumentSpec,
  BUILTIN_VIPER_MODULES,
  BUILTIN_VISPROG_MODULES,
  type CallStyle,
  ModuleRegistry,
  type ModuleSpec,
  SUB_TASK_KINDS,
  type SubTaskKind,
  type ValueType,
  createModuleRegistry,
  defaultModuleRegistry,
} from './module-registry';
export {
  type ControlContext,
  type ControlKind,
  type Framework,
  type LiteralValue,
  type Step,
  type StepArgument,
  type StepGraph,
  distillableSteps,
  stepAncestors,
  stepDependents,
} from './step-graph';
export {
  type DiagnosticJson,
  type StepGraphJson,
  type StepJson,
  type TableOptions,
  formatStepArgument,
  formatStepGraphTable,
  stepGraphToJson,
} from './step-graph-format';
export {
  type JsonValue,
  type SubTaskInput,
  type SubTaskInstance,
  dedupeSubTaskInstances,
  subTaskHash,
  subTaskInstances,
} from './sub-tasks';
export type { ProgramTrace, StepTrace } from './trace';
export { type ViperTraceImport, type ViperTraceImportOptions, importViperTrace } from './trace-import';
export { DEFAULT_VIPER_INPUTS, type ViperParseOptions, parseViperProgram } from './viper-parser';
export {
  type ImagePatch,
  type PatchCoordinates,
  VIPER_CROP_MARGIN,
  patchPixelBox,
  pixelBoxToPatchCoordinates,
  sourceBoxInImage,
} from './image-patch';
export { type PythonSyntaxError, pythonSyntaxError } from './python-syntax';
export { type CompiledViperProgram, type ViperCompileOptions, compileViperProgram } from './viper-compile';
export {
  type ViperInterpreterOptions,
  type ViperJob,
  type ViperRunOptions,
  type ViperRunTrace,
  ViperInterpreter,
  runViperProgram,
} from './viper-interpreter';
export {
  VIPER_MODULE_NAMES,
  type ViperModuleContext,
  type ViperModuleImplementation,
  type ViperModuleName,
  type ViperModules,
} from './viper-modules';
export { DEFAULT_VIPER_LIMITS, type ViperLimits } from './viper-runtime';
export { STUB_LLM_ANSWER, createStubViperModules } from './viper-stub-modules';
export { type ViperVideo, createVideo } from './video-segment';
export {
  DEFAULT_VISPROG_INPUTS,
  VISPROG_LOC_REGIONS,
  type VisProgParseOptions,
  parseVisProgProgram,
} from './visprog-parser';
export {
  type AboveBelowFallback,
  VISPROG_CROP_MODULES,
  type VisualObject,
  visprogCropBox,
  visprogExpandBox,
  visprogLocRegion,
} from './visprog-semantics';
