// Syntax errors of ViperGPT programs are located where CPython's own parser reports them (checked with ast.parse).

import test from 'ava';
import { ViperInterpreter, parseViperProgram } from '../lib/program';
import { runPython } from './helpers/python3';

/** Malformed programs: unclosed, mismatched and unmatched brackets, strings, indentation, missing ':' and commas. */
const MALFORMED = [
  'def execute_command(image):\n    x = foo(1,\n    y = 2\n    return x\n',
  'def execute_command(image):\n    x = [1, 2\n    return x\n',
  'def execute_command(image):\n    patches = image_patch.find("cat"\n    return patches\n',
  'def execute_command(image):\n    x = foo(bar(1)\n    return x\n',
  'def execute_command(image):\n    return {"a": 1\n',
  'def execute_command(image):\n    x = (1 +\n',
  'def execute_command(image):\n    if a:\n        x = (1,\n    else:\n        y = 2\n',
  'def execute_command(image):\n    x = [a for a in b if\n    return x\n',
  'x = (1,\n  2,\n  3\n',
  'def execute_command(image):\n    x = foo(1, 2]\n    return x\n',
  'x = (1,\n  2]\n',
  'def execute_command(image):\n    x = 1)\n',
  'def execute_command(image):\n    x = 1\n    return x)\n',
  "def execute_command(image):\n    x = 'abc\n    return x\n",
  'def execute_command(image):\n    x = """abc\n    return x\n',
  "def execute_command(image):\n    x = 'ab\\\ncd\n",
  "x = = 2\ny = 'abc\n",
  'x = = 2\ny = 1)\n',
  'x = 1 \\ 2\n',
  'def execute_command(image):\n    if x > 1\n        return x\n',
  'def execute_command(image):\n    for x in y\n        pass\n',
  'def execute_command(image)\n    return 1\n',
  'def execute_command(image):\n    if x > 1:\n        return 1\n    elif x < 0\n        return 2\n',
  'def execute_command(image):\n    if x > 1:\n    return x\n',
  'def execute_command(image):\n    for x in y:\n    return 1\n',
  'def execute_command(image):\n    if x:\n        pass\n    else:\n    return 1\n',
  'def execute_command(image):\nreturn 1\n',
  'def execute_command(image):\n    x = 1\n        y = 2\n',
  'x = 1\n    y = 2\n',
  'def execute_command(image):\n        x = 1\n    y = 2\n',
  'if x:\n    y = 1\n  z = 2\n',
  'def execute_command(image):\n\tx = 1\n        y = 2\n',
  'def execute_command(image):\n    x = foo(a b)\n',
  'def execute_command(image):\n    return foo(a.b c)\n',
  'def execute_command(image):\n    x = {"a": 1 "b": 2}\n',
  'x = foo(1,\n  2,\n  3 4)\n',
  'def execute_command(image):\n    x = [1, 2\n    y = (3\n',
  'def execute_command(image):\n    x = = 2\n',
  'def execute_command(image):\n    x = 1 +\n',
  'def execute_command(image):\n    return x.\n',
  'def execute_command(image):\n    x = y +* 2\n',
  'def execute_command(image):\n    return [x for x in y if]\n',
  'def execute_command(image):\n    if x = 1:\n        pass\n',
  'def execute_command(image):\n    print "hello"\n',
];

const REFERENCE = `
import ast, json, sys
out = []
for source in json.load(sys.stdin):
    try:
        ast.parse(source)
        out.append(None)
    except SyntaxError as error:
        out.append([error.lineno, error.offset, error.msg])
print(json.dumps(out))
`;

test('syntax errors are reported at the line and column CPython reports, by the parser and the interpreter', async (t) => {
  const expected = runPython<Array<[number, number, string] | null>>(REFERENCE, MALFORMED);
  const interpreter = new ViperInterpreter();
  for (const [i, source] of MALFORMED.entries()) {
    const reference = expected[i];
    t.not(reference, null, `CPython accepts ${JSON.stringify(source)}`);
    if (!reference) continue;
    const [line, column, message] = reference;
    const syntax = parseViperProgram(source).diagnostics.filter((diagnostic) => diagnostic.code === 'syntax');
    t.deepEqual(
      syntax.map((diagnostic) => [diagnostic.line, diagnostic.column]),
      [[line, column]],
      `${JSON.stringify(source)}: CPython says ${line}:${column} ${message}`,
    );
    const trace = await interpreter.run(source);
    t.false(trace.ok);
    t.deepEqual(
      [trace.diagnostics[0].code, trace.diagnostics[0].line, trace.diagnostics[0].column],
      ['syntax', line, column],
    );
    t.deepEqual(trace.steps, []);
  }
});

test("tokenizer messages use CPython's words", (t) => {
  const message = (source: string) =>
    parseViperProgram(source).diagnostics.find((d) => d.code === 'syntax')?.message;
  t.is(message('x = foo(1,\n  2\n'), "Python syntax error: '(' was never closed");
  t.is(
    message('x = [1, 2)\n'),
    "Python syntax error: closing parenthesis ')' does not match opening parenthesis '['",
  );
  t.is(message("x = 'abc\n"), 'Python syntax error: unterminated string literal (detected at line 1)');
  t.is(
    message('def f():\n    if x:\n    return 1\n'),
    "Python syntax error: expected an indented block after 'if' statement on line 2",
  );
  t.is(
    message('def f():\n    x = foo(a b)\n'),
    'Python syntax error: invalid syntax. Perhaps you forgot a comma?',
  );
});
