// The names every sandboxed ViperGPT program sees without defining them: Python's builtins, math and ViperGPT's API.

import { PYTHON_BUILTINS } from './python-builtins';
import { MATH_MODULE } from './python-math';
import type { Value } from './python-values';
import { VIPER_FUNCTIONS } from './viper-api';

/** Read-only: a program's own module-level names shadow these. */
export const SANDBOX_GLOBALS: ReadonlyMap<string, Value> = new Map<string, Value>([
  ...PYTHON_BUILTINS,
  ...VIPER_FUNCTIONS,
  ['math', MATH_MODULE],
]);
