// EVAL expressions: Python semantics for the subset VisProg uses, truth tables, and errors (no JavaScript eval).

import test from 'ava';
import { SdvpError } from '../lib/errors/sdvp-error';
import {
  type EvalValue,
  evaluateEvalExpression,
  parseEvalExpression,
  visprogEvalValue,
} from '../lib/program';

const evaluate = (source: string, bindings: Record<string, EvalValue> = {}) =>
  evaluateEvalExpression(source, bindings);

test("and / or / not / xor truth tables over VisProg's yes/no answers", (t) => {
  const answers = ['yes', 'no'];
  for (const a of answers) {
    for (const b of answers) {
      const bindings = { A: visprogEvalValue(a), B: visprogEvalValue(b) };
      const x = a === 'yes';
      const y = b === 'yes';
      t.is(evaluate('{A} and {B}', bindings), x && y, `${a} and ${b}`);
      t.is(evaluate('{A} or {B}', bindings), x || y, `${a} or ${b}`);
      t.is(evaluate('{A} xor {B}', bindings), x !== y, `${a} xor ${b}`);
      t.is(evaluate('not {A}', bindings), !x, `not ${a}`);
      t.is(evaluate('not {A} and {B}', bindings), !x && y, `not ${a} and ${b}`);
      t.is(evaluate("'yes' if {A} and not {B} else 'no'", bindings), x && !y ? 'yes' : 'no');
    }
  }
});

test('GQA and NLVR expressions from the corpus', (t) => {
  t.is(evaluate("'yes' if {ANSWER0} > 0 else 'no'", { ANSWER0: 2 }), 'yes');
  t.is(evaluate("'yes' if {ANSWER0} > 0 else 'no'", { ANSWER0: 0 }), 'no');
  t.is(evaluate("'yes' if {ANSWER0} + {ANSWER1} > 0 else 'no'", { ANSWER0: 0, ANSWER1: 1 }), 'yes');
  t.is(evaluate("'top' if {ANSWER0} > 0 else 'bottom'", { ANSWER0: 0 }), 'bottom');
  t.is(
    evaluate('{ANSWER0} + {ANSWER1} == 2', {
      ANSWER0: visprogEvalValue('1'),
      ANSWER1: visprogEvalValue('1'),
    }),
    true,
  );
  t.is(evaluate('{ANSWER0} >= 7', { ANSWER0: visprogEvalValue('7') }), true);
  t.is(
    evaluate('{ANSWER0} == 2 and {ANSWER2} and {ANSWER4}', { ANSWER0: 2, ANSWER2: true, ANSWER4: false }),
    false,
  );
  t.is(evaluate('{ANSWER0}', { ANSWER0: visprogEvalValue('yes') }), true);
});

test('and / or return an operand, as in Python', (t) => {
  t.is(evaluate("0 or 'x'"), 'x');
  t.is(evaluate("'' and 5"), '');
  t.is(evaluate('3 and 4'), 4);
  t.is(evaluate('None or 0'), 0);
});

test('arithmetic and comparisons follow Python', (t) => {
  t.is(evaluate('7 // 2'), 3);
  t.is(evaluate('-7 // 2'), -4);
  t.is(evaluate('-7 % 3'), 2);
  t.is(evaluate('7 % -3'), -2);
  t.is(evaluate('7 / 2'), 3.5);
  t.is(evaluate('2 ** 3 ** 2'), 512);
  t.is(evaluate('-2 ** 2'), -4);
  t.is(evaluate('1 + 2 * 3 - 4'), 3);
  t.is(evaluate('(1 + 2) * 3'), 9);
  t.is(evaluate('True + True'), 2);
  t.is(evaluate("'ab' + 'c'"), 'abc');
  t.is(evaluate("'ab' * 2"), 'abab');
  t.is(evaluate('1 < 2 < 3'), true);
  t.is(evaluate('1 < 3 < 2'), false);
  t.is(evaluate('1 == 1.0 == True'), true);
  t.is(evaluate("'a' < 'b'"), true);
  t.is(evaluate("'cat' in 'a cat here'"), true);
  t.is(evaluate("'dog' not in 'a cat here'"), true);
  t.is(evaluate('None is None'), true);
  t.is(evaluate('1 is not None'), true);
  t.is(evaluate("1 == '1'"), false);
  t.is(evaluate("'a' 'b'"), 'ab');
  t.is(evaluate('"it\\\'s"'), "it's");
  t.is(evaluate('1 if 0 else 2 if 0 else 3'), 3);
  t.is(evaluate('0x10 + 1_000 + .5'), 1016.5);
});

test('VisProg value conversion: yes/no are booleans, decimal strings are integers, other strings stay strings', (t) => {
  t.is(visprogEvalValue('yes'), true);
  t.is(visprogEvalValue('no'), false);
  t.is(visprogEvalValue('12'), 12);
  t.is(visprogEvalValue('1.5'), '1.5');
  t.is(visprogEvalValue('red'), 'red');
  t.is(visprogEvalValue('Yes'), 'Yes');
  t.is(visprogEvalValue(3), 3);
  t.is(visprogEvalValue(false), false);
  t.is(visprogEvalValue(null), null);
  t.throws(() => visprogEvalValue([1, 2]), { instanceOf: SdvpError });
});

test('run-time errors are SdvpErrors naming the Python error', (t) => {
  const cases: Array<[string, Record<string, EvalValue>, RegExp]> = [
    ['{A} > 2', { A: 'red' }, /'>' not supported between instances of 'str' and 'int'/],
    ['{A} - 1', { A: 'x' }, /unsupported operand types for -: 'str' and 'int'/],
    ['1 / 0', {}, /division by zero/],
    ['1 // 0', {}, /integer division or modulo by zero/],
    ['{B}', {}, /no value for \{B\}/],
    ["1 in 'abc'", {}, /requires string as left operand/],
    ["'a' * 1.5", {}, /non-int/],
  ];
  for (const [source, bindings, message] of cases) {
    const error = t.throws(() => evaluate(source, bindings), { instanceOf: SdvpError });
    t.regex(error!.message, message, source);
  }
});

test('malformed expressions are reported with the offset of the fault, never thrown by the parser', (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ["'yes' if {ANSWER0} > 0 and else 'no'", 27, /expected an expression after 'and', found 'else'/],
    ['{A} +', 5, /expected an expression after '\+', found the end/],
    ['{A} {B}', 4, /unexpected '\{B\}' after a complete expression/],
    ['answer == 1', 0, /unknown name 'answer': EVAL expressions refer to program variables as \{answer\}/],
    ["'open", 0, /unterminated string literal/],
    ['{ A }', 0, /'\{' must start a placeholder/],
    ['1 & 2', 2, /'&' is not supported/],
    ['[1, 2]', 0, /'\[' is not supported/],
    ["'x' if {A}", 10, /expected 'else'/],
    ['(1 + 2', 6, /expected '\)'/],
    ['07', 0, /'07' is not a valid number/],
    ['1 = 1', 2, /'=' is not supported/],
    ['', 0, /expected an expression after the start/],
    ['a $ b', 2, /unexpected character '\$'/],
  ];
  for (const [source, offset, message] of cases) {
    const parsed = parseEvalExpression(source);
    t.is(parsed.root, null, source);
    t.is(parsed.error?.offset, offset, source);
    t.regex(parsed.error?.message ?? '', message, source);
    t.throws(() => evaluateEvalExpression(parsed, {}), { instanceOf: SdvpError });
  }
});

test('placeholders are collected even when the expression is malformed', (t) => {
  const parsed = parseEvalExpression("'yes' if {ANSWER0} > 0 and else {ANSWER1}");
  t.deepEqual(
    parsed.placeholders.map((p) => [p.name, p.offset]),
    [
      ['ANSWER0', 9],
      ['ANSWER1', 32],
    ],
  );
  const lexical = parseEvalExpression("{A} + 'unterminated {B}");
  t.deepEqual(
    lexical.placeholders.map((p) => p.name),
    ['A', 'B'],
  );
});

test('deeply nested expressions fail cleanly', (t) => {
  const parsed = parseEvalExpression(`${'('.repeat(20000)}1${')'.repeat(20000)}`);
  t.is(parsed.root, null);
  t.regex(parsed.error!.message, /nested too deeply/);
});
