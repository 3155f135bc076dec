// Runs CPython for reference answers in tests: `python3` (or $SDVP_PYTHON), fed a script and JSON on stdin.

import { spawnSync } from 'node:child_process';

/** Runs `script` with `input` as JSON on stdin and returns its stdout parsed as JSON; throws with stderr on failure. */
export function runPython<T>(script: string, input: unknown): T {
  const python = process.env.SDVP_PYTHON || 'python3';
  const child = spawnSync(python, ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (child.error)
    throw new Error(`${python} could not run (these tests need CPython 3): ${child.error.message}`);
  if (child.status !== 0) throw new Error(`${python} failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as T;
}

/** CPython's version, as `3.11.7`. */
export function pythonVersion(): string {
  return runPython<string>('import json, platform; print(json.dumps(platform.python_version()))', null);
}
