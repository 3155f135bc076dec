// Execution traces: what each step of one program run received, returned, and how long it took.

import type { Framework } from './step-graph';

/** One executed (or failed) step. */
export interface StepTrace {
  /** The step in the program's step graph, or null when an imported call could not be matched to one. */
  stepId: number | null;
  module: string;
  output: string | null;
  line: number | null;
  /** Resolved inputs by argument name (images as RasterImage, or ImageReference in imported traces). */
  inputs: Record<string, unknown>;
  /** What the step produced (undefined when it failed). */
  value: unknown;
  error: string | null;
  durationMs: number;
  /**
   * Whether a module implementation (a model) was called. False for VisProg's built-in semantics and for LOC's
   * fixed TOP/BOTTOM/LEFT/RIGHT regions, which never reach the detector.
   */
  moduleCalled: boolean;
}

/** One run of one program. A failing step fails the run, never the caller. */
export interface ProgramTrace {
  programId: string;
  framework: Framework;
  ok: boolean;
  /** The program's result (the last RESULT for VisProg; the recorded result for imported traces). */
  result: unknown;
  error: { stepId: number | null; message: string } | null;
  steps: StepTrace[];
  durationMs: number;
}
