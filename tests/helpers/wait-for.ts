// Polling for a condition on disk while a child process runs (the run tests wait for a checkpoint or a stage).

import type { ChildProcess } from 'node:child_process';

/** Resolves once `condition()` holds; rejects when the child exits first or `timeoutMs` passes. */
export function waitFor(condition: () => boolean, child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (condition()) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`the condition never held (exit ${child.exitCode})`));
      }
    }, 100);
  });
}
