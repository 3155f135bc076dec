// How a distillation run divides its work among the ranks of a process group: contiguous shards of lists,
// shards of instances by content hash, and exchanges that put the parts back together in rank order and
// make every rank fail together when one rank's part failed. A run without a group is a group of one: no
// collective is issued and every shard is the whole.

import { MAX_OBJECT_BYTES, type ProcessGroup } from '../distributed/process-group';
import { SdvpError } from '../errors/sdvp-error';

/** What a rank reports after its part of a phase. */
type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

/** JSON sent per rank in one round of a list exchange (half the limit: the envelope and escapes fit). */
const ROUND_BYTES = MAX_OBJECT_BYTES / 2;

/** Part `index` of `count` contiguous parts of `length` items, as [begin, end) (sizes differ by at most one). */
export function shardRange(length: number, index: number, count: number): [number, number] {
  return [Math.floor((index * length) / count), Math.floor(((index + 1) * length) / count)];
}

export class RunGroup {
  readonly group: ProcessGroup | undefined;
  readonly rank: number;
  readonly worldSize: number;

  constructor(group?: ProcessGroup) {
    this.group = group;
    this.rank = group?.rank ?? 0;
    this.worldSize = group?.worldSize ?? 1;
  }

  /** Rank 0: the rank that writes the run folder. */
  get leader(): boolean {
    return this.rank === 0;
  }

  /** This rank's contiguous part [begin, end) of `length` items (parts differ by at most one item). */
  range(length: number): [number, number] {
    return shardRange(length, this.rank, this.worldSize);
  }

  /** This rank's contiguous part of a list. */
  shard<T>(list: readonly T[]): T[] {
    const [begin, end] = this.range(list.length);
    return list.slice(begin, end);
  }

  /** Whether an instance (by its sha256 content hash, hex) is this rank's to label. */
  ownsHash(hash: string): boolean {
    return Number.parseInt(hash.slice(0, 8), 16) % this.worldSize === this.rank;
  }

  /**
   * Runs this rank's part of a phase and exchanges every rank's result, in rank order. When a rank's part
   * failed, every rank throws: that rank its own error, the others ERR_SDVP_DIST_PEER naming it and its
   * message — or ERR_SDVP_ABORTED when the failures were all stops (Ctrl-C), so every rank stops cleanly.
   */
  async settle<T>(phase: string, work: () => Promise<T> | T): Promise<T[]> {
    if (!this.group) return [await work()];
    let outcome: Outcome<T>;
    let own: unknown;
    try {
      outcome = { ok: true, value: await work() };
    } catch (error) {
      own = error;
      const code = error instanceof SdvpError ? error.code : 'ERR_SDVP_INTERNAL';
      outcome = { ok: false, code, message: (error as Error)?.message ?? String(error) };
    }
    const outcomes = await this.group.allGatherObject(outcome);
    if (own !== undefined) throw own;
    const failed = outcomes
      .map((entry, rank) => ({ entry, rank }))
      .filter((item): item is { entry: Extract<Outcome<T>, { ok: false }>; rank: number } => !item.entry.ok);
    if (failed.length > 0) {
      if (failed.every(({ entry }) => entry.code === 'ERR_SDVP_ABORTED'))
        throw new SdvpError(
          'ERR_SDVP_ABORTED',
          `rank(s) ${failed.map((f) => f.rank).join(', ')} stopped ${phase}.`,
        );
      const first = failed[0];
      throw new SdvpError(
        'ERR_SDVP_DIST_PEER',
        `rank ${first.rank} failed ${phase} (${first.entry.code}: ${first.entry.message})` +
          (failed.length > 1
            ? `; rank(s) ${failed
                .slice(1)
                .map((f) => f.rank)
                .join(', ')} failed too`
            : ''),
        { field: `rank ${first.rank}` },
      );
    }
    return outcomes.map((entry) => (entry as Extract<Outcome<T>, { ok: true }>).value);
  }

  /** Rank 0's value (computed by `decide` on rank 0 alone), on every rank; rank 0's failure fails them all. */
  async fromLeader<T>(phase: string, decide: () => Promise<T> | T): Promise<T> {
    const values = await this.settle(phase, () => (this.leader ? decide() : (null as T)));
    return values[0];
  }

  /**
   * Every rank's list, concatenated in rank order, on every rank. Lists of any length travel in rounds of
   * at most ROUND_BYTES of JSON per rank (allGatherObject is for small values).
   */
  async concat<T>(list: readonly T[]): Promise<T[]> {
    if (!this.group) return [...list];
    const parts: T[][] = Array.from({ length: this.worldSize }, () => []);
    let next = 0;
    for (;;) {
      const chunk: T[] = [];
      let bytes = 0;
      while (next < list.length) {
        const size = Buffer.byteLength(JSON.stringify(list[next]));
        if (chunk.length > 0 && bytes + size > ROUND_BYTES) break;
        chunk.push(list[next++]);
        bytes += size;
      }
      const round = await this.group.allGatherObject({ items: chunk, more: next < list.length });
      round.forEach((part, rank) => {
        for (const item of part.items) parts[rank].push(item);
      });
      if (!round.some((part) => part.more)) return parts.flat();
    }
  }

  /** The same JSON from every rank: rank 0's list wherever the list is rank 0's alone. */
  async leaderList<T>(list: readonly T[]): Promise<T[]> {
    return this.concat(this.leader ? list : []);
  }

  /** Every rank's small JSON value, in rank order. */
  async gather<T>(value: T): Promise<T[]> {
    return this.group ? this.group.allGatherObject(value) : [value];
  }
}
