// Values that are ready now or later: the ViperGPT interpreter stays synchronous until a module returns a Promise.

/** A value, or a Promise of it when an asynchronous module call lies on the way. */
export type MaybePromise<T> = T | Promise<T>;

/** Continues with `next` now when `value` is ready, or when it settles. */
export function then<T, U>(value: MaybePromise<T>, next: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/**
 * Runs `step` until it reports `false`, synchronously while it returns plain values; once it returns a Promise
 * the remaining iterations continue when that settles (each resumes as a fresh synchronous run).
 */
export function repeat(step: () => MaybePromise<boolean>): MaybePromise<void> {
  for (;;) {
    const more = step();
    if (more instanceof Promise) return more.then((again) => (again ? repeat(step) : undefined));
    if (!more) return;
  }
}

/** Evaluates `count` producers in order (never overlapping) and collects their values. */
export function sequence<T>(count: number, produce: (index: number) => MaybePromise<T>): MaybePromise<T[]> {
  const values = new Array<T>(count);
  const from = (start: number): MaybePromise<T[]> => {
    for (let i = start; i < count; i++) {
      const value = produce(i);
      if (value instanceof Promise) {
        return value.then((ready) => {
          values[i] = ready;
          return from(i + 1);
        });
      }
      values[i] = value;
    }
    return values;
  };
  return from(0);
}
