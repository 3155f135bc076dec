// Runs jobs with bounded concurrency, results in job order: the runMany of both program interpreters.

import { argError } from '../errors/sdvp-error';

/** Runs `run` on every item, at most `concurrency` at a time; the results keep the items' order. */
export async function runConcurrently<T, R>(
  items: Iterable<T>,
  concurrency: number,
  run: (item: T) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw argError('ERR_SDVP_RANGE', 'options.concurrency', 'a positive integer', concurrency);
  }
  const list = [...items];
  const results = new Array<R>(list.length);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const index = next++;
      results[index] = await run(list[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
  return results;
}
