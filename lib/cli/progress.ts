// Progress for long commands: a cli-progress bar (with rate and ETA) on a terminal, plain lines at most
// every few seconds otherwise (CI logs, pipes).

import type { SingleBar } from 'cli-progress';

export interface Progress {
  /** Starts a phase of `total` units. */
  start(label: string, total: number, unit?: string): void;
  /** Sets the units done, an optional note (loss, samples/s...), and the total when it changed. */
  update(done: number, note?: string, total?: number): void;
  stop(): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Force plain lines even on a terminal. */
  plain?: boolean;
  /** Seconds between plain lines. Default 5. */
  every?: number;
}

export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY && !options.plain && !process.env.CI) return barProgress(stream);
  return lineProgress(stream, (options.every ?? 5) * 1000);
}

function barProgress(stream: NodeJS.WriteStream): Progress {
  const { SingleBar, Presets } = require('cli-progress') as typeof import('cli-progress');
  let bar: SingleBar | undefined;
  return {
    start(label, total, unit = 'items') {
      bar?.stop();
      bar = new SingleBar(
        {
          stream,
          format: `${label.padEnd(22)} {bar} {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted} {note}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        Presets.shades_classic,
      );
      bar.start(total, 0, { note: '', rate: '0' });
      (bar as unknown as { startedAt: number }).startedAt = Date.now();
    },
    update(done, note, total) {
      if (!bar) return;
      if (total !== undefined && total !== bar.getTotal()) bar.setTotal(total);
      const started = (bar as unknown as { startedAt: number }).startedAt;
      const seconds = (Date.now() - started) / 1000;
      bar.update(done, { note: note ?? '', rate: seconds > 0 ? (done / seconds).toFixed(0) : '0' });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function lineProgress(stream: NodeJS.WriteStream, everyMs: number): Progress {
  let label = '';
  let total = 0;
  let unit = '';
  let started = 0;
  let last = 0;
  let done = 0;
  let note = '';
  const print = () => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
    stream.write(
      `${label}: ${done}/${total} ${unit}, ${rate.toFixed(0)}/s, ETA ${eta}s${note ? `, ${note}` : ''}\n`,
    );
    last = Date.now();
  };
  return {
    start(newLabel, newTotal, newUnit = 'items') {
      label = newLabel;
      total = newTotal;
      unit = newUnit;
      started = Date.now();
      last = started;
      done = 0;
      note = '';
    },
    update(newDone, newNote, newTotal) {
      if (newTotal !== undefined) total = newTotal;
      done = newDone;
      note = newNote ?? '';
      if (Date.now() - last >= everyMs) print();
    },
    stop() {
      if (total > 0) print();
      total = 0;
    },
  };
}
