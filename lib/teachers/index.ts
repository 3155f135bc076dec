// The teachers area: teacher kinds, the registry, the scheduler, the label store, adapters, built-in teachers.
export {
  classificationToTopK,
  detectionToGrid,
  distributionToLogits,
  teacherConfidence,
  type TopKRows,
} from './adapters';
export { CommandTeacher, type CommandTeacherOptions } from './command-teacher';
export { fileImageSource, folderImageSource } from './image-source';
export { LabelStore, type StoredLabel, type TeacherIdentity } from './label-store';
export { PrecomputedTeacher, type PrecomputedTeacherOptions } from './precomputed-teacher';
export {
  type TeacherEntry,
  type TeacherRegistry,
  loadTeacherRegistry,
  openTeachers,
  parseTeacherRegistry,
  selectTeachers,
} from './registry';
export {
  type LabelOptions,
  type LabelProgress,
  type LabelSummary,
  LabellingError,
  labelInstances,
} from './scheduler';
export type { AcceptRule, ImageSource, LabelContext, Teacher, TeacherBinding } from './teacher';
export { teacherModules } from './teacher-modules';
export type { ClassificationOutput, DetectionOutput, TeacherOutput } from './teacher-output';
export { TorchScriptTeacher, type TorchScriptTeacherOptions } from './torchscript-teacher';
export {
  type TeacherMetrics,
  type TeacherTrainingOptions,
  trainBuiltinTeachers,
} from './train-builtin-teachers';
