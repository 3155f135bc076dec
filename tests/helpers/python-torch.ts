// Finds a Python with PyTorch for reference tests and benchmarks: SDVP_PYTHON, then /usr/bin/python3,
// then python3 on PATH, each checked with `import torch`; or a visible reason to skip.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type PythonTorch =
  | { python: string; version: string; skip?: undefined }
  | { python?: undefined; skip: string };

let cached: PythonTorch | undefined;

/** The first candidate interpreter that imports torch, or why none does. */
export function findPythonTorch(): PythonTorch {
  if (cached) return cached;
  const candidates = [process.env.SDVP_PYTHON, '/usr/bin/python3', 'python3'].filter(
    (candidate): candidate is string => typeof candidate === 'string' && candidate.length > 0,
  );
  const tried: string[] = [];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (probe.status === 0) {
      cached = { python, version: probe.stdout.trim() };
      return cached;
    }
    const reason = probe.error
      ? probe.error.message
      : (probe.stderr.trim().split('\n').pop() ?? `exit ${probe.status}`);
    tried.push(`${python}: ${reason}`);
  }
  cached = {
    skip: `no Python with PyTorch found (tried ${tried.join('; ')}); install python3-torch or set SDVP_PYTHON`,
  };
  return cached;
}

/** Runs a Python script (given as text) with arguments; returns its stdout or throws with its stderr. */
export function runPython(python: string, script: string, args: string[] = [], timeoutMs = 300_000): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdvp-py-'));
  const file = path.join(dir, 'script.py');
  fs.writeFileSync(file, script);
  try {
    const result = spawnSync(python, [file, ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (result.status !== 0) {
      throw new Error(
        `python failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stderr}`,
      );
    }
    return result.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
