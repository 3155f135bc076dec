// The curriculum area: the stage plan, pacing inside a stage, and schedules.
export { type Stage, type StageSetting, dependencyOrder, moduleDependencies, planStages } from './stage-plan';
export { DEFAULT_PACING, type PacingOptions, pacedCount, pacingFraction, rankByConfidence } from './pacing';
export { type CosineOptions, type Ramp, cosineLr, rampAt } from './schedules';
