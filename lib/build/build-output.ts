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
  if (/sdvp_torch|native\/torch\/|TorchConfig|Caffe2|libtorch|libc10|c10::|torch::/i.test(context)) return 'torch';
  // CMake prints "CMake Error at …" and the cause on the following lines.
  const cmakeError = /CMake Error[^\n]*(?:\n.*){0,6}/.exec(output)?.[0] ?? '';
  if (/CUDA|nvcc/.test(cmakeError)) return 'cuda';
  if (/Torch|Caffe2/.test(cmakeError)) return 'torch';
  return null;
}

/** Up to `maxLines` lines around the first failure, for the summary (the log has everything). */
export function failureExcerpt(output: string, maxLines = 8): string {
  const lines = output.split('\n');
  const first = lines.findIndex((line) => FAILURE_LINE.test(line));
  const start = first >= 0 ? first : Math.max(0, lines.length - maxLines);
  return lines
    .slice(start, start + maxLines)
    .map((line) => line.trimEnd())
    .filter(Boolean)
    .join('\n');
}
