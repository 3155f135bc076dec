// Micro-batching for module implementations: calls that arrive while programs run concurrently (runMany) are
// gathered and answered by one batched model call, so a neural module costs one forward pass per batch.

/** Wraps a batch function as a per-call function; calls made in the same turn of the event loop share a batch. */
export function microBatched<Request, Response>(
  runBatch: (requests: Request[]) => Promise<Response[]>,
  maxBatch: number,
): (request: Request) => Promise<Response> {
  let pending: Array<{
    request: Request;
    resolve: (value: Response) => void;
    reject: (error: unknown) => void;
  }> = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    while (pending.length > 0) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(maxBatch);
      runBatch(batch.map((entry) => entry.request)).then(
        (responses) => {
          if (responses.length !== batch.length) {
            const error = new Error(`a batched module answered ${responses.length} of ${batch.length} calls`);
            for (const entry of batch) entry.reject(error);
            return;
          }
          batch.forEach((entry, i) => entry.resolve(responses[i]));
        },
        (error) => {
          for (const entry of batch) entry.reject(error);
        },
      );
    }
  };
  return (request) =>
    new Promise<Response>((resolve, reject) => {
      pending.push({ request, resolve, reject });
      if (pending.length >= maxBatch) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}
