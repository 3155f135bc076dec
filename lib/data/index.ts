// The data area: dataset format and loading, the digit-scene benchmark, oracle modules, the general mix.
export { Dataset, openDataset, decodeImageFile, refPath } from './dataset';
export {
  type DatasetManifest,
  type SceneRecord,
  type SubAnswer,
  type TaskRecord,
  manifestSchema,
  readJsonLines,
  sceneRecordSchema,
  subAnswerSchema,
  taskRecordSchema,
} from './dataset-format';
export { type DigitBenchmarkOptions, generateDigitBenchmark, normalizeAnswer } from './generate-digits';
export { GeneralMix, type GeneralMixOptions, DEFAULT_GENERAL_MIX } from './general-mix';
export { loadMnistDigits, splitMnist, type MnistDigits, type MnistSplit } from './mnist-digits';
export { oracleModules, type SceneLookup } from './oracle-modules';
export {
  objectPhrase,
  parseObjectPhrase,
  parseQuestion,
  questionText,
  type ObjectQuery,
  type QuestionMeaning,
} from './phrases';
export { Random } from './random';
export { type ProgramRun, accuracyOf, runInstances, runPrograms } from './run-programs';
export {
  COLOR_NAMES,
  type ColorName,
  type Scene,
  type SceneObject,
  boxIou,
  matchedBoxes,
  renderScene,
} from './scene';
export { TARGET_TASKS, TASK_NAMES, type TaskName } from './task-templates';
export { digitAnswerVocab, digitTokenVocab } from './vocabulary';
