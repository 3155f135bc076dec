// The label store: schema, per-batch commits, reuse, and refusal of foreign, corrupt and stale stores.

import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { LabelStore, type TeacherIdentity } from '../lib/teachers/label-store';
import { fakeInstance } from './helpers/teacher-fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'sdvp-store-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));

const teacher: TeacherIdentity = {
  id: 'digit-vqa',
  version: '1',
  kind: 'torchscript',
  module: 'VQA',
  subTask: 'vqa',
  output: 'classification',
  fingerprint: 'a'.repeat(64),
};

test('a new store is created with its schema; committed labels come back in bulk and per key', (t) => {
  const file = path.join(root, 'new.sqlite');
  const store = LabelStore.open(file);
  store.registerTeacher(teacher);
  store.commit(teacher, [
    { instance: fakeInstance('h1'), output: { labels: ['7', '1'], probs: [0.9, 0.1] } },
    { instance: fakeInstance('h2'), output: { labels: ['3'], probs: [1] } },
  ]);
  t.deepEqual([...store.labelledHashes('digit-vqa', '1')].sort(), ['h1', 'h2']);
  t.deepEqual(store.labelledHashes('digit-vqa', '2').size, 0);
  t.deepEqual(store.labels('digit-vqa', '1').get('h1'), { labels: ['7', '1'], probs: [0.9, 0.1] });
  t.deepEqual(store.counts(), [{ teacher: 'digit-vqa', version: '1', labels: 2 }]);
  store.close();
  // Any SQLite client reads it: the documented tables and the WAL journal.
  const db = new Database(file, { readonly: true });
  t.is(db.prepare("SELECT value FROM sdvp_store WHERE key = 'format'").pluck().get(), 'sdvp-label-store');
  t.is(db.prepare('SELECT COUNT(*) FROM labels').pluck().get(), 2);
  t.is(db.prepare('SELECT COUNT(*) FROM instances').pluck().get(), 2);
  t.is(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
  const again = LabelStore.open(file, { readonly: true });
  t.is([...again.entries()].length, 2);
  again.close();
});

test('the same teacher version with another fingerprint is refused as stale; a new version is fine', (t) => {
  const store = LabelStore.open(path.join(root, 'stale.sqlite'));
  store.registerTeacher(teacher);
  t.throws(() => store.registerTeacher({ ...teacher, fingerprint: 'b'.repeat(64) }), {
    code: 'ERR_SDVP_STORE',
    message: /stale/,
  });
  t.notThrows(() => store.registerTeacher({ ...teacher, version: '2', fingerprint: 'b'.repeat(64) }));
  store.close();
});

test('foreign, garbage, truncated and missing stores are reported and left untouched', (t) => {
  const foreign = path.join(root, 'foreign.sqlite');
  const db = new Database(foreign);
  db.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine')");
  db.close();
  const before = readFileSync(foreign);
  t.throws(() => LabelStore.open(foreign), { code: 'ERR_SDVP_STORE', message: /not an sdvp label store/ });
  t.deepEqual(readFileSync(foreign), before);

  const garbage = path.join(root, 'garbage.sqlite');
  writeFileSync(garbage, 'x'.repeat(5000));
  t.throws(() => LabelStore.open(garbage), { code: 'ERR_SDVP_STORE' });
  t.is(readFileSync(garbage, 'utf8'), 'x'.repeat(5000));

  const good = path.join(root, 'good.sqlite');
  const store = LabelStore.open(good);
  store.registerTeacher(teacher);
  store.commit(
    teacher,
    Array.from({ length: 300 }, (_, i) => ({
      instance: fakeInstance(`h${i}`),
      output: { labels: ['1'], probs: [1] },
    })),
  );
  store.close();
  const truncated = path.join(root, 'truncated.sqlite');
  copyFileSync(good, truncated);
  truncateSync(truncated, 3000);
  const bytes = readFileSync(truncated);
  t.throws(() => LabelStore.open(truncated), { code: 'ERR_SDVP_STORE' });
  t.deepEqual(readFileSync(truncated), bytes);

  t.throws(() => LabelStore.open(path.join(root, 'absent.sqlite'), { readonly: true }), {
    code: 'ERR_SDVP_STORE',
    message: /does not exist/,
  });
});
