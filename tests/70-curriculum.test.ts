// The curriculum's parts: the stage planner on real programs, pacing, schedules, the tokenizer, and run
// config validation.

import test from 'ava';
import { pacedCount, pacingFraction, rankByConfidence } from '../lib/curriculum/pacing';
import { cosineLr, rampAt } from '../lib/curriculum/schedules';
import { dependencyOrder, moduleDependencies, planStages } from '../lib/curriculum/stage-plan';
import { WordTokenizer, splitWords } from '../lib/models/tokenizer';
import { parseVisProgProgram } from '../lib/program/visprog-parser';
import { parseRunConfig } from '../lib/run/config';
import { loadCorpus } from './helpers/corpus';

const distillable = new Set(['LOC', 'VQA']);

test('the planner orders LOC before VQA on the public GQA programs of the corpus (VQA sees LOC crops)', (t) => {
  const graphs = loadCorpus()
    .filter((record) => record.framework === 'visprog' && record.task === 'gqa')
    .map((record) => parseVisProgProgram(record.program));
  t.true(graphs.length > 10);
  const counts = moduleDependencies(graphs, distillable);
  t.true((counts.before.get('LOC')?.get('VQA') ?? 0) > 0);
  t.is(counts.before.get('VQA')?.get('LOC') ?? 0, 0);
  t.deepEqual(dependencyOrder(counts), ['LOC', 'VQA']);
  t.deepEqual(planStages(graphs, distillable), [
    { name: 'LOC', modules: ['LOC'] },
    { name: 'VQA', modules: ['VQA'] },
  ]);
  t.deepEqual(planStages(graphs, distillable, 'joint'), [{ name: 'joint', modules: ['LOC', 'VQA'] }]);
  t.deepEqual(
    planStages(graphs, distillable, ['VQA', 'LOC']).map((stage) => stage.name),
    ['VQA', 'LOC'],
  );
  t.throws(() => planStages(graphs, distillable, ['SEG']), { code: 'ERR_SDVP_CONFIG', message: /SEG/ });
});

test('without a dependency between them, modules keep the order the programs first use them in', (t) => {
  const independent = parseVisProgProgram(
    "ANSWER0=VQA(image=IMAGE,question='q?')\nBOX0=LOC(image=IMAGE,object='x')\nFINAL=RESULT(var=ANSWER0)",
  );
  t.deepEqual(dependencyOrder(moduleDependencies([independent], distillable)), ['VQA', 'LOC']);
});

test('pacing grows from the start fraction to the whole set; ranking is by confidence, ties by index', (t) => {
  const options = { start: 0.3, fullAt: 0.5 };
  t.is(pacingFraction(0, 100, options), 0.3);
  t.true(Math.abs(pacingFraction(25, 100, options) - 0.65) < 1e-9);
  t.is(pacingFraction(50, 100, options), 1);
  t.is(pacingFraction(99, 100, options), 1);
  t.is(pacedCount(10, 0, 100, options), 3);
  t.is(pacedCount(10, 0, 1, options), 10);
  t.deepEqual(rankByConfidence([0.2, 0.9, 0.9, 0.5]), [1, 2, 3, 0]);
});

test('ramps and the cosine learning rate', (t) => {
  t.is(rampAt({ start: 2, end: 1 }, 0, 11), 2);
  t.is(rampAt({ start: 2, end: 1 }, 10, 11), 1);
  t.is(rampAt({ start: 2, end: 1 }, 5, 11), 1.5);
  const options = { lr: 1e-3, warmupSteps: 10, minFactor: 0.1 };
  t.is(cosineLr(0, 100, options), 1e-4);
  t.is(cosineLr(9, 100, options), 1e-3);
  t.true(Math.abs(cosineLr(10, 100, options) - 1e-3) < 1e-12);
  t.true(Math.abs(cosineLr(99, 100, options) - 1e-4) < 1e-12);
});

test('the tokenizer lower-cases, splits words, numbers and marks, maps unknown words to <unk> and pads', (t) => {
  t.deepEqual(splitWords('What digit is THIS? 42nd'), ['what', 'digit', 'is', 'this', '?', '42', 'nd']);
  const tokenizer = new WordTokenizer(['<pad>', '<unk>', 'what', 'digit', 'is', 'this', '?'], 4);
  t.deepEqual(tokenizer.ids('What digit is this?'), [2, 3, 4, 5]);
  t.deepEqual(tokenizer.ids('what colour?'), [2, 1, 6]);
  const batch = tokenizer.encodeBatch(['what', 'is this digit ? extra words']);
  t.deepEqual(batch.shape, [2, 4]);
  t.deepEqual([...batch.data], [2, 0, 0, 0, 4, 5, 3, 6]);
  t.deepEqual(tokenizer.unknownWords(['what colour is red']), ['colour', 'red']);
  t.throws(() => new WordTokenizer(['a', '<unk>'], 4), { code: 'ERR_SDVP_ARG' });
  t.throws(() => new WordTokenizer(['<pad>'], 4), { code: 'ERR_SDVP_ARG', message: /<unk>/ });
});

test('run config validation names the field and fills documented defaults', (t) => {
  const minimal = { data: 'd', student: 's.pt', teachers: 't.json' };
  const config = parseRunConfig(minimal, '/base');
  t.is(config.data, '/base/d');
  t.is(config.run, '/base/run');
  t.deepEqual(config.tasks, ['digits-qa', 'digits-pairs']);
  t.is(config.stages, 'dependency');
  t.true(config.antiForgetting.enabled);
  t.is(config.objective.topKAnswers, 5);
  t.throws(() => parseRunConfig({ ...minimal, epochs: -1 }, '/'), {
    code: 'ERR_SDVP_CONFIG',
    message: /field 'epochs'/,
  });
  t.throws(() => parseRunConfig({ ...minimal, antiForgetting: { weight: 'a lot' } }, '/'), {
    code: 'ERR_SDVP_CONFIG',
    message: /antiForgetting\.weight/,
  });
  t.throws(() => parseRunConfig({ ...minimal, stages: 'random' }, '/'), {
    code: 'ERR_SDVP_CONFIG',
    message: /field 'stages'/,
  });
  t.throws(() => parseRunConfig({ student: 's.pt', teachers: 't.json' }, '/'), {
    code: 'ERR_SDVP_CONFIG',
    message: /field 'data'/,
  });
  t.throws(() => parseRunConfig({ ...minimal, learningRate: 1 }, '/'), {
    code: 'ERR_SDVP_CONFIG',
    message: /learningRate/,
  });
});
