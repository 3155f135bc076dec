// The `math` module of the sandbox: CPython's functions and constants over floats and ints.

import { type MaybePromise, then } from './maybe-async';
import { bindArguments, noKeywords } from './python-arguments';
import { raise } from './python-errors';
import { collect } from './python-iteration';
import { binaryOperation } from './python-operators';
import {
  PyBuiltin,
  PyModule,
  PyTuple,
  type Runtime,
  type Value,
  isIntLike,
  isNumeric,
  toBigInt,
  toFloat,
  typeName,
} from './python-values';

function real(value: Value | undefined): number {
  if (value === undefined || !isNumeric(value))
    raise.type(`must be real number, not ${typeName(value ?? null)}`);
  return toFloat(value as number);
}

function integer(value: Value | undefined): bigint {
  if (value === undefined || !isIntLike(value)) {
    raise.type(`'${typeName(value ?? null)}' object cannot be interpreted as an integer`);
  }
  return toBigInt(value as bigint | boolean);
}

function checked(result: number, inputs: number[]): number {
  if (Number.isNaN(result) && !inputs.some(Number.isNaN)) raise.value('math domain error');
  if (!Number.isFinite(result) && inputs.every(Number.isFinite)) raise.overflow('math range error');
  return result;
}

function unary(name: string, compute: (x: number) => number): [string, Value] {
  return [
    name,
    new PyBuiltin(name, (args, keywords) => {
      noKeywords(name, keywords);
      if (args.length !== 1) raise.type(`math.${name}() takes exactly one argument (${args.length} given)`);
      const x = real(args[0]);
      return checked(compute(x), [x]);
    }),
  ];
}

function toInteger(name: string, round: (x: number) => number): [string, Value] {
  return [
    name,
    new PyBuiltin(name, (args, keywords) => {
      noKeywords(name, keywords);
      if (args.length !== 1) raise.type(`math.${name}() takes exactly one argument (${args.length} given)`);
      const value = args[0];
      if (isIntLike(value)) return toBigInt(value);
      const x = real(value);
      if (Number.isNaN(x)) raise.value('cannot convert float NaN to integer');
      if (!Number.isFinite(x)) raise.overflow('cannot convert float infinity to integer');
      return BigInt(round(x));
    }),
  ];
}

function logarithm(args: Value[], keywords: Map<string, Value> | null): number {
  noKeywords('log', keywords);
  if (args.length < 1 || args.length > 2) raise.type(`log expected 1 or 2 arguments, got ${args.length}`);
  const ln = (value: Value): number => {
    // Large ints keep their precision through their bit length, as CPython does.
    if (isIntLike(value)) {
      const big = toBigInt(value);
      if (big <= 0n) raise.value('math domain error');
      const bits = big.toString(2).length;
      if (bits > 1000) return Math.log(Number(big >> BigInt(bits - 64))) + (bits - 64) * Math.LN2;
    }
    const x = real(value);
    if (x <= 0) raise.value('math domain error');
    return Math.log(x);
  };
  const numerator = ln(args[0]);
  if (args.length === 1) return numerator;
  const denominator = ln(args[1]);
  if (denominator === 0) raise.zeroDivision('float division by zero');
  return numerator / denominator;
}

/** Shewchuk's exact summation, as CPython's math.fsum. */
function exactSum(values: number[]): number {
  const partials: number[] = [];
  let special = 0;
  for (let x of values) {
    if (!Number.isFinite(x)) {
      special += x;
      continue;
    }
    let i = 0;
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const high = x + y;
      const low = y - (high - x);
      if (low !== 0) partials[i++] = low;
      x = high;
    }
    partials.length = i;
    partials.push(x);
  }
  if (special !== 0 || Number.isNaN(special)) return special;
  let n = partials.length;
  let high = 0;
  if (n > 0) {
    high = partials[--n];
    let low = 0;
    while (n > 0) {
      const x = high;
      const y = partials[--n];
      high = x + y;
      low = y - (high - x);
      if (low !== 0) break;
    }
    if (n > 0 && ((low < 0 && partials[n - 1] < 0) || (low > 0 && partials[n - 1] > 0))) {
      const y = low * 2;
      const x = high + y;
      if (y === x - high) high = x;
    }
  }
  return high;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function factorial(n: bigint, runtime: Runtime): bigint {
  if (n < 0n) raise.value('factorial() not defined for negative values');
  if (n > 3000n) runtime.checkIntBits(Number(n) * 10);
  let result = 1n;
  for (let i = 2n; i <= n; i++) result *= i;
  runtime.charge(Number(n));
  return runtime.checkInt(result);
}

function isClose(args: Value[], keywords: Map<string, Value> | null): boolean {
  const [a, b, relative, absolute] = bindArguments('isclose', args, keywords, {
    names: ['a', 'b'],
    required: 2,
    positionalOnly: 2,
    keywordOnly: ['rel_tol', 'abs_tol'],
  });
  const x = real(a);
  const y = real(b);
  const relTol = relative === undefined ? 1e-9 : real(relative);
  const absTol = absolute === undefined ? 0 : real(absolute);
  if (relTol < 0 || absTol < 0) raise.value('tolerances must be non-negative');
  if (x === y) return true;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  const difference = Math.abs(y - x);
  return difference <= Math.abs(relTol * y) || difference <= Math.abs(relTol * x) || difference <= absTol;
}

function product(args: Value[], keywords: Map<string, Value> | null, runtime: Runtime): MaybePromise<Value> {
  const [iterable, start] = bindArguments('prod', args, keywords, {
    names: ['iterable'],
    required: 1,
    positionalOnly: 1,
    keywordOnly: ['start'],
  });
  return then(collect(iterable as Value, runtime), (items) =>
    items.reduce((total: Value, item) => binaryOperation('*', total, item, runtime), start ?? 1n),
  );
}

function builtin(name: string, implementation: PyBuiltin['implementation']): [string, Value] {
  return [name, new PyBuiltin(name, implementation)];
}

const ATTRIBUTES: ReadonlyMap<string, Value> = new Map<string, Value>([
  ['pi', Math.PI],
  ['e', Math.E],
  ['tau', 2 * Math.PI],
  ['inf', Number.POSITIVE_INFINITY],
  ['nan', Number.NaN],
  unary('sqrt', Math.sqrt),
  unary('exp', Math.exp),
  unary('exp2', (x) => 2 ** x),
  unary('expm1', Math.expm1),
  unary('log2', (x) => (x <= 0 ? Number.NaN : Math.log2(x))),
  unary('log10', (x) => (x <= 0 ? Number.NaN : Math.log10(x))),
  unary('log1p', (x) => (x <= -1 ? Number.NaN : Math.log1p(x))),
  unary('fabs', Math.abs),
  unary('sin', Math.sin),
  unary('cos', Math.cos),
  unary('tan', Math.tan),
  unary('asin', Math.asin),
  unary('acos', Math.acos),
  unary('atan', Math.atan),
  unary('sinh', Math.sinh),
  unary('cosh', Math.cosh),
  unary('tanh', Math.tanh),
  unary('asinh', Math.asinh),
  unary('acosh', Math.acosh),
  unary('atanh', (x) => (Math.abs(x) >= 1 ? Number.NaN : Math.atanh(x))),
  unary('degrees', (x) => (x * 180) / Math.PI),
  unary('radians', (x) => (x * Math.PI) / 180),
  toInteger('floor', Math.floor),
  toInteger('ceil', Math.ceil),
  toInteger('trunc', Math.trunc),
  builtin('log', (args, keywords) => logarithm(args, keywords)),
  builtin('pow', (args, keywords) => {
    noKeywords('pow', keywords);
    if (args.length !== 2) raise.type(`pow expected 2 arguments, got ${args.length}`);
    const x = real(args[0]);
    const y = real(args[1]);
    if (x === 0 && y < 0) raise.value('math domain error');
    return checked(x ** y, [x, y]);
  }),
  builtin('atan2', (args, keywords) => {
    noKeywords('atan2', keywords);
    if (args.length !== 2) raise.type(`atan2 expected 2 arguments, got ${args.length}`);
    return Math.atan2(real(args[0]), real(args[1]));
  }),
  builtin('copysign', (args, keywords) => {
    noKeywords('copysign', keywords);
    if (args.length !== 2) raise.type(`copysign expected 2 arguments, got ${args.length}`);
    const magnitude = Math.abs(real(args[0]));
    const sign = real(args[1]);
    return sign < 0 || Object.is(sign, -0) ? -magnitude : magnitude;
  }),
  builtin('fmod', (args, keywords) => {
    noKeywords('fmod', keywords);
    if (args.length !== 2) raise.type(`fmod expected 2 arguments, got ${args.length}`);
    const x = real(args[0]);
    const y = real(args[1]);
    if (y === 0 || !Number.isFinite(x)) raise.value('math domain error');
    return x % y;
  }),
  builtin('modf', (args, keywords) => {
    noKeywords('modf', keywords);
    if (args.length !== 1) raise.type(`modf() takes exactly one argument (${args.length} given)`);
    const x = real(args[0]);
    const whole = Math.trunc(x);
    return new PyTuple([Number.isFinite(x) ? x - whole || (x < 0 ? -0 : 0) : x > 0 ? 0 : -0, whole]);
  }),
  builtin('hypot', (args, keywords) => {
    noKeywords('hypot', keywords);
    return Math.hypot(...args.map((arg) => real(arg)));
  }),
  builtin('dist', (args, keywords, runtime) => {
    noKeywords('dist', keywords);
    if (args.length !== 2) raise.type(`dist expected 2 arguments, got ${args.length}`);
    return then(collect(args[0], runtime), (p) =>
      then(collect(args[1], runtime), (q) => {
        if (p.length !== q.length) raise.value('both points must have the same number of dimensions');
        return Math.hypot(...p.map((value, i) => real(value) - real(q[i])));
      }),
    );
  }),
  builtin('isclose', (args, keywords) => isClose(args, keywords)),
  builtin('isnan', (args, keywords) => {
    noKeywords('isnan', keywords);
    return Number.isNaN(real(args[0]));
  }),
  builtin('isinf', (args, keywords) => {
    noKeywords('isinf', keywords);
    const x = real(args[0]);
    return !Number.isFinite(x) && !Number.isNaN(x);
  }),
  builtin('isfinite', (args, keywords) => {
    noKeywords('isfinite', keywords);
    return Number.isFinite(real(args[0]));
  }),
  builtin('gcd', (args, keywords) => {
    noKeywords('gcd', keywords);
    return args.map((arg) => integer(arg)).reduce((a, b) => gcd(a, b), 0n);
  }),
  builtin('lcm', (args, keywords, runtime) => {
    noKeywords('lcm', keywords);
    return args
      .map((arg) => integer(arg))
      .reduce((a, b) => {
        if (a === 0n || b === 0n) return 0n;
        const value = (a * b) / gcd(a, b);
        return runtime.checkInt(value < 0n ? -value : value);
      }, 1n);
  }),
  builtin('isqrt', (args, keywords) => {
    noKeywords('isqrt', keywords);
    const n = integer(args[0]);
    if (n < 0n) raise.value('isqrt() argument must be nonnegative');
    if (n < 2n) return n;
    let x = BigInt(Math.floor(Math.sqrt(Number(n))));
    while (x * x > n) x -= 1n;
    while ((x + 1n) * (x + 1n) <= n) x += 1n;
    return x;
  }),
  builtin('factorial', (args, keywords, runtime) => {
    noKeywords('factorial', keywords);
    if (args.length !== 1) raise.type(`factorial() takes exactly one argument (${args.length} given)`);
    return factorial(integer(args[0]), runtime);
  }),
  builtin('comb', (args, keywords, runtime) => {
    noKeywords('comb', keywords);
    const n = integer(args[0]);
    const k = integer(args[1]);
    if (n < 0n || k < 0n) raise.value('n must be a non-negative integer');
    if (k > n) return 0n;
    const m = k < n - k ? k : n - k;
    runtime.charge(Number(m));
    let result = 1n;
    for (let i = 1n; i <= m; i++) result = runtime.checkInt((result * (n - m + i)) / i);
    return result;
  }),
  builtin('perm', (args, keywords, runtime) => {
    noKeywords('perm', keywords);
    const n = integer(args[0]);
    const k = args.length > 1 && args[1] !== null ? integer(args[1]) : n;
    if (n < 0n || k < 0n) raise.value('n must be a non-negative integer');
    if (k > n) return 0n;
    runtime.charge(Number(k));
    let result = 1n;
    for (let i = 0n; i < k; i++) result = runtime.checkInt(result * (n - i));
    return result;
  }),
  builtin('prod', (args, keywords, runtime) => product(args, keywords, runtime)),
  builtin('fsum', (args, keywords, runtime) => {
    noKeywords('fsum', keywords);
    if (args.length !== 1) raise.type(`fsum() takes exactly one argument (${args.length} given)`);
    return then(collect(args[0], runtime), (items) => exactSum(items.map((item) => real(item))));
  }),
]);

/** The sandbox's `math` module. */
export const MATH_MODULE = new PyModule('math', ATTRIBUTES);
