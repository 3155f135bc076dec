// Reads a build's output: what CMake chose for CUDA and LibTorch (its `-- sdvp:` lines), which optional
// part a failed build broke on, and a short excerpt of the error for the summary.

export type OptionalPart = 'cuda' | 'torch';

export interface CMakeChoice {
  on: boolean;
  /** CMake's reason in parentheses, e.g. 'LibTorch not found' or '1.13.0 at /usr/lib/…/Torch'. */
  detail: string | null;
}

export interface CMakeChoices {
  cuda: CMakeChoice | null;
  torch: CMakeChoice | null;
}

/** The last `-- sdvp: CUDA kernels …` and `-- sdvp: LibTorch runtime …` lines of a configure run. */
export function parseCMakeChoices(output: string): CMakeChoices {
  const last = (pattern: RegExp): CMakeChoice | null => {
    let choice: CMakeChoice | null = null;
    for (const match of output.matchAll(pattern)) choice = { on: match[1] === 'ON', detail: match[2] ?? null };
    return choice;
  };
  return {
    cuda: last(/^-- sdvp: CUDA kernels (ON|OFF)(?: \((.*)\))?\s*$/gm),
    torch: last(/^-- sdvp: LibTorch runtime (ON|OFF)(?: \((.*)\))?\s*$/gm),
  };
}

/** Lines that report a failure, in CMake, ninja, make, compiler and dynamic-loader words. */
const FAILURE_LINE = /CMake Error|FAILED:|\*\*\* \[|error:|Error \d|undefined (reference|symbol)|cannot open shared object/;

/**
 * The optional part a failed build broke on, from the failing targets (sdvp_torch / sdvp_kernels_cuda) or
 * the CMake package that failed; null when the failure is in the kernels or the addon itself.
 */
export function failedPart(output: string): OptionalPart | null {
  const failures = output.split('\n').filter((line) => FAILURE_LINE.test(line));
  const context = failures.join('\n');
  if (/sdvp_kernels_cuda|\.cu[:.(]|\.cuh[:(]|CUDAToolkit|CMAKE_CUDA|nvcc/i.test(context)) return 'cuda';
  // LibTorch's names (torch/, ATen/, c10/, Caffe2, the sdvp_torch target, torch_*binding.cc files).
  if (/torch|\bATen\b|c10|caffe2/i.test(context)) return 'torch';
  // CMake prints "CMake Error at …" and the cause on the following lines.
  const cmakeError = /CMake Error[^\n]*(?:\n.*){0,6}/.exec(output)?.[0] ?? '';
  if (/CUDA|nvcc/.test(cmakeError)) return 'cuda';
  if (/Torch|Caffe2/.test(cmakeError)) return 'torch';
  return null;
}

/**
 * Up to `maxLines` failure lines for the summary: compiler command lines left out, long lines cut, and
 * the explanation CMake prints under "CMake Error at …" kept.
 */
export function failureExcerpt(output: string, maxLines = 6): string {
  const lines = output.split('\n').map((line) => line.trimEnd());
  const chosen: string[] = [];
  for (let i = 0; i < lines.length && chosen.length < maxLines; i++) {
    if (!FAILURE_LINE.test(lines[i]) || lines[i].length >= 600) continue;
    chosen.push(lines[i]);
    if (!lines[i].includes('CMake Error')) continue;
    while (i + 1 < lines.length && lines[i + 1].trim() && chosen.length < maxLines) chosen.push(lines[++i]);
  }
  const excerpt = chosen.length > 0 ? chosen : lines.filter(Boolean).slice(-maxLines);
  return excerpt.map((line) => (line.length > 240 ? `${line.slice(0, 237)}...` : line)).join('\n');
}
