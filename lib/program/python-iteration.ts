// Python iteration in the sandbox: iterators over every iterable value, lazily where Python is lazy.

import { type MaybePromise, repeat, then } from './maybe-async';
import { raise } from './python-errors';
import {
  DONE,
  PyDict,
  PyIterator,
  PyRange,
  PySet,
  PyTuple,
  type Runtime,
  type Value,
  typeName,
} from './python-values';

/** Iterates a list by position, so items appended during the loop are seen, as in Python. */
export class SequenceIterator extends PyIterator {
  readonly typeName: string;
  #index = 0;

  constructor(
    readonly items: readonly Value[],
    typeNameOf = 'list_iterator',
  ) {
    super();
    this.typeName = typeNameOf;
  }

  next(): Value | typeof DONE {
    return this.#index < this.items.length ? this.items[this.#index++] : DONE;
  }
}

class RangeIterator extends PyIterator {
  readonly typeName = 'range_iterator';
  #index = 0;

  constructor(readonly range: PyRange) {
    super();
  }

  next(): Value | typeof DONE {
    return this.#index < this.range.length ? this.range.at(this.#index++) : DONE;
  }
}

/** `enumerate(iterable, start)`. */
export class EnumerateIterator extends PyIterator {
  readonly typeName = 'enumerate';
  #count: bigint;

  constructor(
    readonly inner: PyIterator,
    start: bigint,
  ) {
    super();
    this.#count = start;
  }

  next(runtime: Runtime): MaybePromise<Value | typeof DONE> {
    return then(this.inner.next(runtime), (value) => {
      if (value === DONE) return DONE;
      return new PyTuple([this.#count++, value]);
    });
  }
}

/** `zip(*iterables)`: stops at the shortest, pulling from each in order as CPython does. */
export class ZipIterator extends PyIterator {
  readonly typeName = 'zip';

  constructor(readonly inners: readonly PyIterator[]) {
    super();
  }

  next(runtime: Runtime): MaybePromise<Value | typeof DONE> {
    if (this.inners.length === 0) return DONE;
    const values: Value[] = [];
    let index = 0;
    let finished = false;
    const pull = (): MaybePromise<boolean> => {
      if (index >= this.inners.length) return false;
      return then(this.inners[index].next(runtime), (value) => {
        if (value === DONE) {
          finished = true;
          return false;
        }
        values.push(value);
        index++;
        return true;
      });
    };
    return then(repeat(pull), () => (finished ? DONE : new PyTuple(values)));
  }
}

/** An iterator over any iterable value; TypeError for values that are not iterable. */
export function iterate(value: Value): PyIterator {
  if (Array.isArray(value)) return new SequenceIterator(value);
  if (value instanceof PyIterator) return value;
  if (value instanceof PyTuple) return new SequenceIterator(value.items, 'tuple_iterator');
  if (typeof value === 'string') return new SequenceIterator([...value], 'str_iterator');
  if (value instanceof PyRange) return new RangeIterator(value);
  if (value instanceof PyDict) return new SequenceIterator(value.keys(), 'dict_keyiterator');
  if (value instanceof PySet) return new SequenceIterator(value.values(), 'set_iterator');
  return raise.type(`'${typeName(value)}' object is not iterable`);
}

/** Runs `body` on each item until it returns false; synchronous unless the iterable or the body is not. */
export function forEachItem(
  iterable: Value,
  runtime: Runtime,
  body: (item: Value) => MaybePromise<boolean>,
): MaybePromise<void> {
  if (Array.isArray(iterable)) {
    // Lists are walked by position (appends during the loop are seen); bodies may still be asynchronous.
    let index = 0;
    return repeat(() => {
      if (index >= iterable.length) return false;
      runtime.charge(1);
      return body(iterable[index++]);
    });
  }
  const iterator = iterate(iterable);
  return repeat(() =>
    then(iterator.next(runtime), (item) => {
      if (item === DONE) return false;
      runtime.charge(1);
      return body(item);
    }),
  );
}

/** Every item of an iterable, as a new array (the size limit applies). */
export function collect(iterable: Value, runtime: Runtime): MaybePromise<Value[]> {
  if (Array.isArray(iterable)) {
    runtime.charge(iterable.length);
    return iterable.slice();
  }
  if (iterable instanceof PyTuple) {
    runtime.charge(iterable.items.length);
    return iterable.items.slice();
  }
  if (iterable instanceof PyRange) {
    runtime.checkLength(iterable.length);
    runtime.charge(iterable.length);
    const out = new Array<Value>(iterable.length);
    for (let i = 0; i < iterable.length; i++) out[i] = iterable.at(i);
    return out;
  }
  const out: Value[] = [];
  return then(
    forEachItem(iterable, runtime, (item) => {
      out.push(item);
      runtime.checkLength(out.length);
      return true;
    }),
    () => out,
  );
}
