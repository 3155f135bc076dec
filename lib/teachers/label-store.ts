// The persistent label store: one SQLite file per run (better-sqlite3, WAL), teacher outputs kept in the
// teacher's own label space, keyed by (teacher id, teacher version, instance hash) and committed per batch,
// so a killed labelling process loses nothing it committed and a restarted one labels only what is missing.
//
// Schema (version 1; any SQLite client can read it):
//   sdvp_store(key TEXT PRIMARY KEY, value TEXT)       -- format = 'sdvp-label-store', schema_version = '1'
//   teachers(teacher_id, teacher_version, kind, module, sub_task, output_kind, fingerprint,
//            PRIMARY KEY (teacher_id, teacher_version))  -- fingerprint: what the version was labelled with
//   labels(teacher_id, teacher_version, hash, output TEXT (JSON), labelled_at INTEGER (ms since epoch),
//          PRIMARY KEY (teacher_id, teacher_version, hash)) WITHOUT ROWID
//   instances(hash TEXT PRIMARY KEY, module, sub_task, input TEXT (JSON)) WITHOUT ROWID -- what a hash stands for

import { existsSync, statSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { SdvpError } from '../errors/sdvp-error';
import type { SubTaskInstance } from '../program/sub-tasks';
import type { TeacherOutput, TeacherOutputKind } from './teacher-output';

export const STORE_FORMAT = 'sdvp-label-store';
export const STORE_SCHEMA_VERSION = '1';

/** What identifies a teacher's labels in the store. */
export interface TeacherIdentity {
  id: string;
  version: string;
  kind: string;
  module: string;
  subTask: string;
  output: TeacherOutputKind;
  /** A digest of what produced the labels (model file, command line...): a changed one under the same version is refused. */
  fingerprint: string;
}

export interface StoredLabel {
  teacher: string;
  version: string;
  hash: string;
  output: TeacherOutput;
}

function storeError(path: string, message: string, cause?: unknown): SdvpError {
  return new SdvpError('ERR_SDVP_STORE', `Label store ${path}: ${message}`, { field: 'store', cause });
}

export class LabelStore {
  readonly path: string;
  readonly #db: BetterSqlite3.Database;
  #closed = false;

  private constructor(path: string, db: BetterSqlite3.Database) {
    this.path = path;
    this.#db = db;
  }

  /**
   * Opens a store, creating it when the file does not exist. A file that is not SQLite, not an sdvp store, of
   * another schema version, or corrupt is reported (ERR_SDVP_STORE) and left untouched.
   */
  static open(path: string, options: { readonly?: boolean } = {}): LabelStore {
    const Database = require('better-sqlite3') as typeof BetterSqlite3;
    const exists = existsSync(path);
    if (!exists && options.readonly) throw storeError(path, 'does not exist.');
    if (exists && !statSync(path).isFile()) throw storeError(path, 'is not a file.');
    let db: BetterSqlite3.Database;
    try {
      db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: exists });
    } catch (error) {
      throw storeError(path, `cannot be opened: ${(error as Error).message}`, error);
    }
    try {
      if (exists) LabelStore.#check(path, db);
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.pragma('busy_timeout = 10000');
        if (!exists) LabelStore.#create(db);
      }
    } catch (error) {
      db.close();
      if (error instanceof SdvpError) throw error;
      throw storeError(path, `is not a readable sdvp label store: ${(error as Error).message}`, error);
    }
    return new LabelStore(path, db);
  }

  static #check(path: string, db: BetterSqlite3.Database): void {
    let tables: string[];
    try {
      tables = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((row) => (row as { name: string }).name);
    } catch (error) {
      throw storeError(path, `is not an SQLite database (${(error as Error).message}).`, error);
    }
    if (!tables.includes('sdvp_store'))
      throw storeError(path, 'is an SQLite file but not an sdvp label store (no sdvp_store table).');
    const meta = new Map(
      db
        .prepare('SELECT key, value FROM sdvp_store')
        .all()
        .map((row) => [(row as { key: string }).key, (row as { value: string }).value]),
    );
    if (meta.get('format') !== STORE_FORMAT)
      throw storeError(path, `is not an sdvp label store (format '${meta.get('format')}').`);
    if (meta.get('schema_version') !== STORE_SCHEMA_VERSION) {
      throw storeError(
        path,
        `has schema version ${meta.get('schema_version')}; this sdvp reads version ${STORE_SCHEMA_VERSION}.`,
      );
    }
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw storeError(path, `is corrupt (quick_check: ${String(check)}).`);
  }

  static #create(db: BetterSqlite3.Database): void {
    db.transaction(() => {
      db.exec(`
        CREATE TABLE sdvp_store (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE teachers (
          teacher_id TEXT NOT NULL, teacher_version TEXT NOT NULL, kind TEXT NOT NULL, module TEXT NOT NULL,
          sub_task TEXT NOT NULL, output_kind TEXT NOT NULL, fingerprint TEXT NOT NULL,
          PRIMARY KEY (teacher_id, teacher_version));
        CREATE TABLE labels (
          teacher_id TEXT NOT NULL, teacher_version TEXT NOT NULL, hash TEXT NOT NULL, output TEXT NOT NULL,
          labelled_at INTEGER NOT NULL, PRIMARY KEY (teacher_id, teacher_version, hash)) WITHOUT ROWID;
        CREATE TABLE instances (hash TEXT PRIMARY KEY, module TEXT NOT NULL, sub_task TEXT NOT NULL, input TEXT NOT NULL) WITHOUT ROWID;
      `);
      const insert = db.prepare('INSERT INTO sdvp_store (key, value) VALUES (?, ?)');
      insert.run('format', STORE_FORMAT);
      insert.run('schema_version', STORE_SCHEMA_VERSION);
      insert.run('created_at', new Date().toISOString());
    })();
  }

  #live(): BetterSqlite3.Database {
    if (this.#closed) throw new SdvpError('ERR_SDVP_DISPOSED', `Label store ${this.path} was closed.`);
    return this.#db;
  }

  #run<T>(what: string, body: (db: BetterSqlite3.Database) => T): T {
    const db = this.#live();
    try {
      return body(db);
    } catch (error) {
      if (error instanceof SdvpError) throw error;
      throw storeError(this.path, `${what} failed: ${(error as Error).message}`, error);
    }
  }

  /**
   * Records a teacher before its labels are written. The same id and version with another fingerprint means
   * the labels would be stale: refused (give the changed teacher a new version).
   */
  registerTeacher(teacher: TeacherIdentity): void {
    this.#run('registering a teacher', (db) => {
      const row = db
        .prepare('SELECT fingerprint, output_kind FROM teachers WHERE teacher_id = ? AND teacher_version = ?')
        .get(teacher.id, teacher.version) as { fingerprint: string; output_kind: string } | undefined;
      if (row) {
        if (row.fingerprint !== teacher.fingerprint || row.output_kind !== teacher.output) {
          throw storeError(
            this.path,
            `teacher '${teacher.id}' version '${teacher.version}' was labelled with a different model or command ` +
              `(fingerprint ${row.fingerprint.slice(0, 12)}…, now ${teacher.fingerprint.slice(0, 12)}…); its labels would be stale. ` +
              'Give the teacher a new version in the registry.',
          );
        }
        return;
      }
      db.prepare(
        'INSERT INTO teachers (teacher_id, teacher_version, kind, module, sub_task, output_kind, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run(
        teacher.id,
        teacher.version,
        teacher.kind,
        teacher.module,
        teacher.subTask,
        teacher.output,
        teacher.fingerprint,
      );
    });
  }

  /** Which of `hashes` already have a label of this teacher version. */
  labelledHashes(teacher: string, version: string, hashes?: Iterable<string>): Set<string> {
    return this.#run('reading labels', (db) => {
      const all = db
        .prepare('SELECT hash FROM labels WHERE teacher_id = ? AND teacher_version = ?')
        .pluck()
        .all(teacher, version) as string[];
      if (!hashes) return new Set(all);
      const present = new Set(all);
      const result = new Set<string>();
      for (const hash of hashes) if (present.has(hash)) result.add(hash);
      return result;
    });
  }

  /** Every label of a teacher version, by instance hash (one query: labels are read in bulk). */
  labels(teacher: string, version: string): Map<string, TeacherOutput> {
    return this.#run('reading labels', (db) => {
      const rows = db
        .prepare('SELECT hash, output FROM labels WHERE teacher_id = ? AND teacher_version = ?')
        .raw()
        .all(teacher, version) as Array<[string, string]>;
      return new Map(rows.map(([hash, output]) => [hash, JSON.parse(output) as TeacherOutput]));
    });
  }

  /** Writes one batch of labels (and what their hashes stand for) in one transaction. */
  commit(
    teacher: TeacherIdentity,
    rows: ReadonlyArray<{ instance: SubTaskInstance; output: TeacherOutput }>,
  ): void {
    this.#run('committing labels', (db) => {
      const insertLabel = db.prepare(
        'INSERT OR REPLACE INTO labels (teacher_id, teacher_version, hash, output, labelled_at) VALUES (?, ?, ?, ?, ?)',
      );
      const insertInstance = db.prepare(
        'INSERT OR IGNORE INTO instances (hash, module, sub_task, input) VALUES (?, ?, ?, ?)',
      );
      const now = Date.now();
      db.transaction(() => {
        for (const { instance, output } of rows) {
          insertLabel.run(teacher.id, teacher.version, instance.hash, JSON.stringify(output), now);
          insertInstance.run(
            instance.hash,
            instance.module,
            instance.subTask,
            JSON.stringify(instance.input),
          );
        }
      })();
    });
  }

  /** Label counts per teacher version. */
  counts(): Array<{ teacher: string; version: string; labels: number }> {
    return this.#run('counting labels', (db) =>
      (
        db
          .prepare(
            'SELECT teacher_id, teacher_version, COUNT(*) AS n FROM labels GROUP BY teacher_id, teacher_version ORDER BY teacher_id, teacher_version',
          )
          .all() as Array<{ teacher_id: string; teacher_version: string; n: number }>
      ).map((row) => ({ teacher: row.teacher_id, version: row.teacher_version, labels: row.n })),
    );
  }

  /** Every stored label, in key order. */
  *entries(): Generator<StoredLabel> {
    const rows = this.#run('reading labels', (db) =>
      db
        .prepare(
          'SELECT teacher_id, teacher_version, hash, output FROM labels ORDER BY teacher_id, teacher_version, hash',
        )
        .raw()
        .iterate(),
    ) as IterableIterator<[string, string, string, string]>;
    for (const [teacher, version, hash, output] of rows)
      yield { teacher, version, hash, output: JSON.parse(output) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
