// The ViperGPT sandbox against CPython: the same programs give the same repr, or raise the same exception type.

import test from 'ava';
import { ViperInterpreter } from '../lib/program';
import { runPython } from './helpers/python3';
import { viperProgram } from './helpers/viper-program';

/** Function bodies (indented by the test) whose returned value both interpreters render with repr(). */
const CASES: Record<string, string> = {
  'integer division': 'return [7 // 2, -7 // 2, 7 // -2, -7 // -2, 7.5 // 2, -7.5 // 2, 1 // 0.1, -1 // 0.3]',
  'negative modulo':
    'return [7 % 3, -7 % 3, 7 % -3, -7 % -3, 7.5 % 2, -7.5 % 2, 5 % 0.3, -0.0 % 5, -5 % 0.5]',
  'true division and powers':
    'return [7 / 2, -7 / 2, 1 / 3, 2 ** -1, 10 ** 20 / 3, 2 ** 100, (-2) ** 3, 2 ** 0.5, 0 ** 0, 4 ** 0.5]',
  'big ints':
    'return [2 ** 64, -(2 ** 70) // 3, (2 ** 100) % 7, 10 ** 18 + 1, -(10 ** 30) % 7, 3 ** 40 // -7]',
  slicing:
    "xs = list(range(10))\nreturn [xs[2:5], xs[::-1], xs[-3:], xs[:-3], xs[::3], xs[8:2:-2], xs[100:], xs[-100:2], xs[5:1], 'hello'[1:-1], 'hello'[::-1], (1, 2, 3)[1:], xs[-1], 'abc'[-2], range(10)[2:8:3]]",
  'sort stability':
    "pairs = [(1, 'b'), (0, 'a'), (1, 'a'), (0, 'b'), (2, 'x'), (1, 'c')]\nys = list(pairs)\nys.sort(key=lambda p: p[0], reverse=True)\nreturn [sorted(pairs, key=lambda p: p[0]), sorted(pairs, key=lambda p: p[0], reverse=True), ys, sorted([3, 1, 2]), sorted(['b', 'A', 'a', '_', 'B']), sorted(pairs)]",
  truthiness:
    "return [bool(x) for x in [0, 0.0, -0.0, '', 'a', [], [0], {}, {'a': 1}, set(), None, 1, -1, float('nan'), range(0), range(1), (), (0,), 0.1, ' ']]",
  'and / or values':
    "return [0 or 'x', 1 and 'y', [] and 1, None or [] or 0, 'a' and '' and 1, not [], not 'a']",
  'chained comparisons':
    "return [1 < 2 < 3, 1 < 3 < 2, 3 > 2 == 2, 1 == 1.0 == True, 'a' < 'b' <= 'b', [1, 2] < [1, 3], (1, 2) <= (1, 2), [1, 2] == [1, 2.0], 2 in [1, 2] == True, 1 < 2 > 0 != 5]",
  'numbers and their repr':
    "return [1 == 1.0, True + True, 3 * True, 0.1 + 0.2, 1e16, 1e-5, 123456789.0, 1.0, -0.0, 2.5e-7, float('inf'), 1e300 * 1e10, 1e22, 100.0, 1e15, 12345678901234567.0, -1.0e-4, 0.0001, 1 / 3, 2 / 3]",
  'round, int and float':
    "return [round(2.5), round(3.5), round(-2.5), round(0.125, 2), round(2.675, 2), round(1234.5678, -2), round(15, -1), round(25, -1), round(-0.4), round(0.5), round(1.5), round(-1.5), int('  42 '), int('-7'), int(3.9), int(-3.9), float('1e3'), float(' -1.5 '), int('1_000'), int('ff', 16), float('inf'), str(2.0), str(1 / 3), str(10 ** 20), str(1e20)]",
  'string methods':
    "s = '  Hello World  '\nreturn [s.strip(), s.lower(), s.split(), 'a,b,,c'.split(','), 'a b c'.split(' ', 1), '  a  b  c '.split(None, 1), 'a b c'.rsplit(' ', 1), '-'.join(['x', 'y']), s.replace('l', 'L', 2), 'abc'.startswith(('x', 'a')), 'hello'.find('l'), 'hello'.rfind('l'), 'hello'.count('l'), 'ab'.upper(), 'hello world'.title(), \"they're\".title(), '42'.isdigit(), ''.isdigit(), 'x'.zfill(3), '-5'.zfill(4), 'ab'.center(6, '*'), 'abc'.rstrip('c'), 'xyx'.strip('x'), 'a\\nb\\n'.splitlines(), 'k=v'.partition('='), 'ab'.replace('', '-')]",
  'str.format':
    "return ['{} {}'.format(1, 'a'), '{0:>5}|{1:<4}|{2:^7}'.format('a', 'b', 'c'), '{:.2f}'.format(3.14159), '{:,}'.format(1234567), '{:05d}'.format(42), '{:e}'.format(12345.678), '{:g}'.format(0.0001), '{:%}'.format(0.25), '{:+.1f}'.format(2), '{:x} {:X} {:#o} {:b}'.format(255, 255, 8, 5), '{name}!'.format(name='hi'), '{0[1]}'.format([4, 5]), '{:.3}'.format(2.0), '{:.3}'.format(1234.5), '{:10.4g}|'.format(3.14159), '{:*^9}'.format('mid'), '{!r}'.format('q')]",
  'f-strings':
    "x = 3.14159\nn = 42\nw = 6\nreturn [f'{x:.2f}', f'{n:>5}', f'{n:x}', f'{\"s\"!r}', f'{[1, \"a\"]}', f'{n=}', f'{x!s:>8}', f'{None}', f'{True}', f'{1e20}', f'{0.1}', f'{n:{w}}', f'{{literal}}', f'{n*2}-{x:.1e}', f'{-0.0:.1f}', f'{n:,}', f'{2.5:.0f}', f'{0.125:.2f}']",
  'min, max, sum, any, all, abs':
    "return [min([3, 1, 2]), max([3, 1, 2], key=lambda v: -v), max('abc'), min(3, 1, 2), sum([1, 2, 3]), sum([1, 2], 10), sum([0.5, 0.25]), any([0, 0]), all([]), any(x > 2 for x in [1, 3]), abs(-3), abs(-2.5), max([(1, 'b'), (1, 'a')]), min([], default=7), max([1, 3, 3.0], key=lambda v: v), min(['bb', 'a', 'cc'], key=len)]",
  'enumerate, zip, list, set, dict, range':
    "return [list(enumerate('ab')), list(enumerate('ab', 1)), list(zip([1, 2, 3], 'ab')), sorted(set([3, 1, 3])), dict(a=1), list({'b': 1, 'a': 2}), list(reversed([1, 2, 3])), tuple('ab'), len({1: 2}), list(range(10, 0, -3)), list(range(3)), dict([('x', 1), ('y', 2)]), list(zip()), len(range(0, 10, 3)), 5 in range(0, 10, 5), 4 in range(0, 10, 5)]",
  comprehensions:
    "return [[x * x for x in range(5) if x % 2], {x % 3 for x in range(10)} == {0, 1, 2}, {k: v for k, v in zip('ab', [1, 2])}, sum(x for x in range(4)), [(i, j) for i in range(3) for j in range(i)], any(c.isdigit() for c in 'ab3'), [y for x in [[1, 2], [3]] for y in x if y != 2], list(x for x in 'hi')]",
  'lambdas and closures':
    'fs = [lambda x, i=i: x + i for i in range(3)]\ng = lambda: y\ny = 5\nh = lambda a, b=2: a * b\nreturn [f(10) for f in fs] + [g(), h(3), h(3, b=4), (lambda: 7)()]',
  'nested functions and recursion':
    'def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\ndef fib(n, memo={}):\n    if n < 2:\n        return n\n    if n not in memo:\n        memo[n] = fib(n - 1) + fib(n - 2)\n    return memo[n]\ndef outer():\n    k = 3\n    def inner(v):\n        return v * k\n    return inner\nreturn [fact(20), fib(60), outer()(5)]',
  'tuple unpacking':
    "a, (b, c) = 1, (2, 3)\nx, y = 'ab'\n[p, q] = [4, 5]\nfor i, (j, k) in enumerate([(6, 7)]):\n    pass\nm = n = 9\nreturn [a, b, c, x, y, p, q, i, j, k, m, n]",
  'loops with break, continue and else':
    "i = 0\nwhile i < 10:\n    i += 3\n    if i == 6:\n        break\nelse:\n    i = -1\nout = []\nfor v in range(6):\n    if v % 2:\n        continue\n    out.append(v)\nelse:\n    out.append('done')\nfor v in []:\n    pass\nelse:\n    out.append('empty')\nreturn [i, out]",
  'dict and list methods':
    "d = {'a': 1}\nd['b'] = 2\nd.setdefault('c', 3)\nd.update({'e': 5}, f=6)\nxs = [1, 2, 3]\nxs.append(4)\nxs.extend([5])\nxs.insert(0, 0)\nxs.remove(3)\npopped = xs.pop()\nreturn [d.get('x', 0), d.pop('a'), sorted(d.items()), list(d.keys()), 'b' in d, xs, popped, xs.index(2), xs.count(1), d]",
  'augmented assignment aliasing':
    "a = [1]\nb = a\na += [2]\nc = (1,)\nd = c\nc += (2,)\ns = 'x'\ns *= 3\nn = 5\nn //= 2\nn **= 3\nm = {'k': [1]}\nm['k'] += [2]\nreturn [a, b, a is b, c, d, s, n, m]",
  'math module':
    'import math\nfrom math import sqrt as root\nreturn [math.sqrt(16), root(2), math.floor(-2.5), math.ceil(2.1), math.pi, math.log(8, 2), math.hypot(3, 4), math.isclose(0.1 + 0.2, 0.3), math.fsum([0.1] * 10), math.gcd(12, 18), math.factorial(10), math.inf, math.trunc(-2.7), math.exp(1), math.degrees(math.pi), math.atan2(1, 1), math.log10(1000)]',
  'string repr and escapes':
    "return ['abc' * 2, 'a' in 'cat', 'x' not in 'cat', 'b' * 0, 'é', \"it's\", 'say \"hi\"', 'both \\' and \"', 'tab\\there', 'new\\nline', '\\x00', 'back\\\\slash']",
  sets: 'a = {1, 2, 3}\nb = {2, 3, 4}\nreturn [sorted(a | b), sorted(a & b), sorted(a - b), sorted(a ^ b), a <= {1, 2, 3, 4}, a < a, len(a)]',
  'nested containers and dict keys':
    "d = {1: 'a'}\nd[1.0] = 'b'\nd[True] = 'c'\nd[(1, 2)] = 'tuple'\nreturn [d, str({'a': [1, (2,)], 'b': None}), {(): 1}, [[]], ((),)]",
  'index error': 'return [1][5]',
  'negative index past the start': 'return [1, 2][-3]',
  'zero division': 'return 1 / 0',
  'integer modulo by zero': 'return 1 % 0',
  'float floor division by zero': 'return 1.0 // 0',
  'str plus int': "return 'a' + 1",
  'list plus tuple': 'return [1] + (1,)',
  'len of an int': 'return len(5)',
  'ordering None': 'return None < 1',
  'unhashable key': 'return {[1]: 2}',
  'missing key': "return {'a': 1}['b']",
  'missing attribute': "return 'a'.nope()",
  'too many values to unpack': 'a, b = [1, 2, 3]\nreturn a',
  'unbound local': 'if False:\n    x = 1\nreturn x',
  'undefined name': 'return undefined_name',
  'bad int literal': "return int('abc')",
  'empty max': 'return max([])',
  'math domain': 'import math\nreturn math.sqrt(-1)',
  'calling a non-function': 'return 5()',
  'wrong argument count': 'f = lambda a: a\nreturn f(1, 2)',
};

const REFERENCE = `
import json, sys
results = {}
for name, source in json.load(sys.stdin).items():
    namespace = {}
    try:
        exec(source, namespace)
        results[name] = repr(namespace['execute_command'](None))
    except Exception as error:
        results[name] = '!' + type(error).__name__
print(json.dumps(results))
`;

const programs = Object.fromEntries(Object.entries(CASES).map(([name, body]) => [name, viperProgram(body)]));

test('every case gives the same repr (or raises the same exception type) as CPython', async (t) => {
  const expected = runPython<Record<string, string>>(REFERENCE, programs);
  const interpreter = new ViperInterpreter();
  for (const [name, source] of Object.entries(programs)) {
    const trace = await interpreter.run(source);
    let actual: string;
    if (trace.ok) actual = trace.resultRepr ?? '';
    else {
      const diagnostic = trace.diagnostics[0];
      actual =
        diagnostic.code === 'python-error'
          ? `!${/^(\w+)/.exec(diagnostic.message)![1]}`
          : `?${diagnostic.code}: ${diagnostic.message}`;
    }
    t.is(actual, expected[name], name);
  }
});

test('a Python exception is reported at the operation that raised it, as Python would name it', async (t) => {
  const trace = await new ViperInterpreter().run(viperProgram('xs = [1, 2]\ny = 3\nreturn xs[y]'));
  t.false(trace.ok);
  t.deepEqual(
    trace.diagnostics.map(({ code, line, column, message }) => ({ code, line, column, message })),
    [{ code: 'python-error', line: 4, column: 14, message: 'IndexError: list index out of range' }],
  );
  t.regex(trace.error!.message, /^4:14: error: IndexError: list index out of range \[python-error\]$/);
});
