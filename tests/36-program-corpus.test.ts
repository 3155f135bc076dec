// Every public corpus program through the API and the CLI, with the known upstream mistakes as diagnostics.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { decomposeProgram, parseViperProgram, parseVisProgProgram, stepGraphToJson } from '../lib/program';
import {
  type CorpusRecord,
  corpusDirectory,
  corpusFiles,
  corpusId,
  findRepoRoot,
  loadCorpus,
} from './helpers/corpus';

const corpus = loadCorpus();
const cli = path.join(findRepoRoot(), 'dist', 'lib', 'cli', 'main.js');

const syntaxColon = ['error:syntax@7:59'];

/** The upstream mistakes in the corpus, as the parsers report them. Every other program parses cleanly. */
const EXPECTED: Record<string, string[]> = {
  // `if foo.vertical_center > qux_patch.vertical_center` lacks its ':' in ViperGPT's overlaps_with docstring.
  'viper_api_docstring.jsonl:8': syntaxColon,
  'viper_benchmark_docstring.jsonl:8': syntaxColon,
  'viper_benchmark_docstring.jsonl:15': syntaxColon,
  'viper_chatapi_docstring.jsonl:8': syntaxColon,
  // RefCOCO "top left" reads `objects`, which it never defines.
  'viper_refcoco.jsonl:8': ['error:undefined-variable@6:59'],
  // RESULT(var=ANSWER) where ANSWER2 was meant, which is then never read.
  'visprog_gqa.jsonl:1': ['warning:unused-variable@5:1', 'error:undefined-variable@6:25'],
  // EVAL "'yes' if {ANSWER0} > 0 and else 'no'" is not Python.
  'visprog_gqa.jsonl:17': ['error:malformed-expression@5:47'],
  'visprog_gqa.jsonl:19': ['error:malformed-expression@5:47'],
  // The second EMOJI uses OBJ1 where OBJ2 was meant, so OBJ2 is never read.
  'visprog_imgedit.jsonl:1': ['warning:unused-variable@4:1'],
  // `Image=RIGHT` (capital I) and an unescaped apostrophe in "Disney's", on both lines.
  'visprog_nlvr.jsonl:5': [
    'error:malformed-literal@1:91',
    'error:missing-argument@2:9',
    'error:unknown-argument@2:13',
    'error:malformed-literal@2:92',
  ],
};

function expectedFor(record: CorpusRecord): string[] {
  const listed = EXPECTED[corpusId(record)];
  if (listed) return listed;
  // Knowledge-tagging prompts keep PROMPT.format's {list_max} slot: one warning, where the slot is.
  const slotLine = record.program.split('\n').findIndex((line) => line.includes('{list_max}'));
  if (slotLine >= 0) {
    const column = record.program.split('\n')[slotLine].indexOf('{list_max}') + 1;
    return [`warning:unfilled-template@${slotLine + 1}:${column}`];
  }
  return [];
}

function codes(
  diagnostics: Array<{ severity: string; code: string; line: number; column: number }>,
): string[] {
  return diagnostics.map((d) => `${d.severity}:${d.code}@${d.line}:${d.column}`);
}

test('the corpus holds the 144 programs its README lists', (t) => {
  t.is(corpus.length, 144);
  t.is(corpus.filter((record) => record.framework === 'visprog').length, 56);
  t.is(corpus.filter((record) => record.framework === 'viper').length, 88);
  for (const id of Object.keys(EXPECTED))
    t.true(
      corpus.some((record) => corpusId(record) === id),
      id,
    );
});

test('every corpus program parses; only the known upstream mistakes produce diagnostics', (t) => {
  for (const record of corpus) {
    const graph =
      record.framework === 'visprog'
        ? parseVisProgProgram(record.program)
        : parseViperProgram(record.program);
    t.deepEqual(codes(graph.diagnostics), expectedFor(record), corpusId(record));
    t.true(graph.steps.length > 0, corpusId(record));
    t.is(
      decomposeProgram(record.program).framework,
      record.framework,
      `${corpusId(record)} framework detection`,
    );
    if (record.framework === 'visprog') {
      const lines = record.program.split('\n').filter((line) => line.trim() !== '');
      t.is(graph.steps.length, lines.length, corpusId(record));
      t.true(
        graph.steps.every((step) => step.subTask !== null),
        corpusId(record),
      );
      t.is(graph.steps[graph.steps.length - 1].module, 'RESULT', corpusId(record));
    }
  }
});

test('with the template slot filled, the knowledge-tagging programs are clean', (t) => {
  for (const record of corpus.filter((r) => r.file === 'visprog_knowtag.jsonl')) {
    const graph = parseVisProgProgram(record.program, { templateSlots: { list_max: 20 } });
    t.deepEqual(graph.diagnostics, [], corpusId(record));
  }
});

test('the corpus decomposes into the sub-tasks SDVP distils', (t) => {
  const counts = new Map<string, number>();
  for (const record of corpus) {
    for (const step of decomposeProgram(record.program, { framework: record.framework }).steps) {
      if (step.distillable)
        counts.set(
          `${record.framework}:${step.subTask}`,
          (counts.get(`${record.framework}:${step.subTask}`) ?? 0) + 1,
        );
    }
  }
  for (const kind of [
    'visprog:grounding',
    'visprog:vqa',
    'visprog:classification',
    'visprog:segmentation',
    'visprog:face-detection',
    'viper:grounding',
    'viper:vqa',
    'viper:verification',
    'viper:text-match',
    'viper:depth',
  ]) {
    t.true((counts.get(kind) ?? 0) > 0, kind);
  }
  // Calls in loops are marked as repeated: the frame loop of NExT-QA and the per-patch queries of GQA.
  const kisses = corpus.find((record) => record.question === 'Return the frame when the kid kisses the cat')!;
  const repeated = parseViperProgram(kisses.program).steps.filter((step) => step.repeated);
  t.deepEqual(
    repeated.map((step) => [step.module, step.control.map((context) => context.kind).join('>')]),
    [
      ['exists', 'for'],
      ['exists', 'for>conditional'],
      ['simple_query', 'for>conditional'],
    ],
  );
});

test('the CLI prints the same JSON as the API for every corpus file, and fails on files with errors', (t) => {
  for (const file of corpusFiles()) {
    const result = spawnSync(
      process.execPath,
      [cli, 'decompose', '--json', path.join(corpusDirectory(), file)],
      {
        encoding: 'utf8',
      },
    );
    const records = corpus.filter((record) => record.file === file);
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    t.is(lines.length, records.length, file);
    records.forEach((record, i) => {
      const expected = stepGraphToJson(decomposeProgram(record.program, { framework: record.framework }));
      t.deepEqual(JSON.parse(lines[i]), JSON.parse(JSON.stringify(expected)), corpusId(record));
    });
    const hasErrors = records.some((record) => expectedFor(record).some((code) => code.startsWith('error')));
    t.is(result.status, hasErrors ? 1 : 0, file);
    for (const record of records) {
      for (const code of expectedFor(record)) {
        const [, where] = code.split('@');
        t.true(
          result.stderr.includes(`#${record.index + 1}:${where}: `),
          `${corpusId(record)} ${code} on stderr`,
        );
      }
    }
  }
});

test('the CLI reads single corpus programs from files, with or without --framework', (t) => {
  const directory = mkdtempSync(path.join(tmpdir(), 'sdvp-corpus-'));
  try {
    for (const record of corpus.filter((_, i) => i % 24 === 0)) {
      const file = path.join(directory, `${record.framework}-${record.index}.txt`);
      writeFileSync(file, record.program);
      const expected = JSON.parse(JSON.stringify(stepGraphToJson(decomposeProgram(record.program))));
      for (const extra of [[], ['--framework', record.framework]]) {
        const result = spawnSync(process.execPath, [cli, 'decompose', '--json', ...extra, file], {
          encoding: 'utf8',
        });
        t.deepEqual(JSON.parse(result.stdout), expected, corpusId(record));
        t.is(
          result.status,
          expected.diagnostics.some((d: { severity: string }) => d.severity === 'error') ? 1 : 0,
        );
      }
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test('--slot fills the template slot for a whole JSON Lines file', (t) => {
  const file = path.join(corpusDirectory(), 'visprog_knowtag.jsonl');
  const plain = spawnSync(process.execPath, [cli, 'decompose', file], { encoding: 'utf8' });
  t.is(plain.status, 0);
  t.regex(plain.stderr, /unfilled-template/);
  const filled = spawnSync(process.execPath, [cli, 'decompose', '--slot', 'list_max=20', file], {
    encoding: 'utf8',
  });
  t.is(filled.status, 0);
  t.is(filled.stderr, '13 programs: 0 with errors, 0 with warnings only\n');
  t.regex(filled.stdout, /max=20/);
});
