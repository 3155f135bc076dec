// Dynamic batching for module implementations: calls that arrive while programs run concurrently (runMany)
// wait in per-method queues, and one model answers one batch at a time — whatever queued up while the
// previous batch ran, the longest queue first. A neural module thus costs one forward pass per batch, and
// batches stay full even when programs drift apart.

interface Pending<Request, Response> {
  request: Request;
  resolve: (value: Response) => void;
  reject: (error: unknown) => void;
}

interface Queue {
  pending: Pending<unknown, unknown>[];
  run: (requests: unknown[]) => Promise<unknown[]>;
  maxBatch: number;
}

/** Serialises the batches of one model (all its methods) and forms each batch from the calls waiting. */
export class BatchScheduler {
  readonly #queues: Queue[] = [];
  #busy = false;
  #scheduled = false;

  /** A per-call function whose calls are answered in batches of at most `maxBatch` by `run`. */
  method<Request, Response>(
    run: (requests: Request[]) => Promise<Response[]>,
    maxBatch: number,
  ): (request: Request) => Promise<Response> {
    const queue: Queue = { pending: [], run: run as Queue['run'], maxBatch };
    this.#queues.push(queue);
    return (request) =>
      new Promise<Response>((resolve, reject) => {
        queue.pending.push({ request, resolve, reject } as Pending<unknown, unknown>);
        this.#schedule();
      });
  }

  #schedule(): void {
    if (this.#busy || this.#scheduled) return;
    this.#scheduled = true;
    // Let every call made in this turn of the event loop join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#busy) return;
    let queue: Queue | undefined;
    for (const candidate of this.#queues)
      if (candidate.pending.length > (queue?.pending.length ?? 0)) queue = candidate;
    if (!queue) return;
    const batch = queue.pending.splice(0, queue.maxBatch);
    this.#busy = true;
    queue
      .run(batch.map((entry) => entry.request))
      .then(
        (responses) => {
          if (responses.length !== batch.length) {
            const error = new Error(`a batched module answered ${responses.length} of ${batch.length} calls`);
            for (const entry of batch) entry.reject(error);
          } else batch.forEach((entry, i) => entry.resolve(responses[i]));
        },
        (error) => {
          for (const entry of batch) entry.reject(error);
        },
      )
      .finally(() => {
        this.#busy = false;
        this.#schedule();
      });
  }
}

/** One batched method on a scheduler of its own. */
export function microBatched<Request, Response>(
  runBatch: (requests: Request[]) => Promise<Response[]>,
  maxBatch: number,
): (request: Request) => Promise<Response> {
  return new BatchScheduler().method(runBatch, maxBatch);
}
