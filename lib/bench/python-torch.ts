// Finds a Python interpreter with PyTorch for baselines: SDVP_PYTHON, then Debian's, then PATH's.

import { spawnSync } from 'node:child_process';

export interface PythonTorch {
  python: string;
  torchVersion: string;
}

let cached: PythonTorch | null | undefined;

/** The first interpreter that imports torch, or null (with `findPythonTorch.hint` saying how to get one). */
export function findPythonTorch(): PythonTorch | null {
  if (cached !== undefined) return cached;
  const candidates = [process.env.SDVP_PYTHON, '/usr/bin/python3', 'python3'].filter((x): x is string => !!x);
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (probe.status === 0) {
      cached = { python, torchVersion: probe.stdout.trim() };
      return cached;
    }
  }
  cached = null;
  return null;
}

findPythonTorch.hint =
  'PyTorch was not found: apt-get install -y python3-torch (or set SDVP_PYTHON to a python3 with torch).';
