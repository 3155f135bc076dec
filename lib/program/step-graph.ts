// The step graph: the decomposition of one program into module calls, their arguments and data dependencies.

import type { Diagnostic } from './diagnostics';
import type { SubTaskKind } from './module-registry';

/** The two program styles SDVP distils. */
export type Framework = 'visprog' | 'viper';

/** A constant value written in the program: a string, number, boolean, None (`null`) or a list of them. */
export type LiteralValue = string | number | boolean | null | LiteralValue[];

/** One argument of a step, as written in the program. */
export type StepArgument =
  /** A constant (VisProg `object='cat'`, ViperGPT `find("cat")`). */
  | { kind: 'literal'; value: LiteralValue }
  /** A reference to a variable (VisProg `image=IMAGE0`, ViperGPT `exists(object_name)`). */
  | { kind: 'variable'; name: string }
  /** Any other expression: a VisProg EVAL expression or a ViperGPT expression such as `patches[0]` or an f-string. */
  | { kind: 'expression'; source: string; variables: string[] }
  /** A `{slot}` left from a prompt template (VisProg's knowledge-tagging prompts use `max={list_max}`). */
  | { kind: 'template'; slot: string };

/** What kind of control structure encloses a step, innermost last in `Step.control`. */
export type ControlKind =
  | 'if' // the body of an `if`
  | 'elif' // the condition or body of an `elif`
  | 'else' // an `else` body (of if, for, while or try)
  | 'for' // a `for` loop body: the call repeats
  | 'while' // a `while` condition or body: the call repeats
  | 'comprehension' // a list/set/dict comprehension or generator: the call repeats per element
  | 'lambda' // a lambda body (for example a sort key): the call repeats per element
  | 'conditional' // a branch of `a if c else b`, or the right side of `and`/`or`
  | 'except' // an `except` handler
  | 'function'; // the body of a function defined inside the program

/** One enclosing control structure, with where it starts. */
export interface ControlContext {
  kind: ControlKind;
  line: number;
  column: number;
}

/** One call of a module (VisProg) or of the ImagePatch API (ViperGPT). */
export interface Step {
  /** Position of the step in `StepGraph.steps` (0-based, source order). */
  id: number;
  /** The variable the step's value is assigned to, or null (a ViperGPT call nested in an expression). */
  output: string | null;
  /** Module or API name: `LOC`, `VQA`, `find`, `simple_query`, ... */
  module: string;
  /** Arguments by parameter name, in source order. Positional ViperGPT arguments get their parameter's name. */
  args: Record<string, StepArgument>;
  /** The object a ViperGPT method is called on (`image_patch` in `image_patch.find(...)`); null otherwise. */
  receiver: StepArgument | null;
  /** Ids of the steps whose values flow into this one, ascending. */
  deps: number[];
  /** 1-based source position of the step (VisProg: the output variable; ViperGPT: the method or function name). */
  line: number;
  column: number;
  /** The sub-task kind of the module, or null for a module the registry does not know. */
  subTask: SubTaskKind | null;
  /** Whether this call runs a neural module that can be distilled. */
  distillable: boolean;
  /** Enclosing control structures, outermost first (always empty for VisProg). */
  control: ControlContext[];
  /** Whether the call can run more than once per program run (inside a loop, comprehension or lambda). */
  repeated: boolean;
}

/** A decomposed program. Parsers always return one, with diagnostics for whatever was malformed. */
export interface StepGraph {
  framework: Framework;
  steps: Step[];
  diagnostics: Diagnostic[];
  /** Program inputs the program reads (`IMAGE`, `LEFT`, `RIGHT`; ViperGPT: the parameters of execute_command). */
  inputs: string[];
}

/** The ids of the steps that read the value of step `id` directly. */
export function stepDependents(graph: StepGraph, id: number): number[] {
  const dependents: number[] = [];
  for (const step of graph.steps) if (step.deps.includes(id)) dependents.push(step.id);
  return dependents;
}

/** The ids of all steps step `id` depends on, directly or through other steps, ascending. */
export function stepAncestors(graph: StepGraph, id: number): number[] {
  const seen = new Set<number>();
  const pending = [...(graph.steps[id]?.deps ?? [])];
  while (pending.length > 0) {
    const next = pending.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    for (const dep of graph.steps[next]?.deps ?? []) pending.push(dep);
  }
  return [...seen].sort((a, b) => a - b);
}

/** The steps that call a neural module that can be distilled. */
export function distillableSteps(graph: StepGraph): Step[] {
  return graph.steps.filter((step) => step.distillable);
}
