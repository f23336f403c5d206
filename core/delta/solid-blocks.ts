// The FERRYSB1 solid blocks of one delta, decoded once (issue 14 item 7). Every op whose entry is
// in a block names the block's whole range (core/delta/solid-format.ts), and each used to decode
// and split the whole block again: ~14 decodes of the same bytes for bench/apply's 50 MB tree.
// Here the first op to reach a block starts its decode and every other op of that block waits on
// the same result: the members (views into the one decoded buffer, every check of
// core/delta/patch-apply.ts readSolidBlock done once) or the same refusal, so a bogus block is
// refused for each of its members. A block is held only until the last op that names it is done
// (each is at most SOLID_MAX_DECODED bytes), and the cache is dropped with its applyDelta.

import type { SolidMember } from './solid-format.ts';

/** Where an entry lies: `size` bytes at `offset` of `file`. */
export interface EntryRange {
  file: string;
  offset: number;
  size: number;
}

/** The key of a range (a block is the same block only at the same file, offset and size). */
export function rangeKey(r: EntryRange): string {
  return `${r.offset}:${r.size}:${r.file}`;
}

/**
 * Blocks held at once. ferry's publisher writes one block per delta (core/delta/make-delta.ts); a
 * delta naming more, with members interleaved, keeps at most this many (each ≤ SOLID_MAX_DECODED),
 * and decodes any other for its one use, as before.
 */
export const SOLID_BLOCKS_HELD = 4;

export class SolidBlocks {
  private readonly held = new Map<string, { members: Promise<SolidMember[]>; left: number }>();
  private readonly uses = new Map<string, number>();
  private decoded = 0;

  /** Counts one more op that names `range` (before any is applied). A range no op was counted for is decoded for its one use and not kept. */
  expect(range: EntryRange): void {
    const key = rangeKey(range);
    this.uses.set(key, (this.uses.get(key) ?? 0) + 1);
  }

  /** How many blocks were decoded (for tests: once per block, however many members it has). */
  get decodes(): number {
    return this.decoded;
  }

  /** Blocks held now (for tests: none once every op that names them is done). */
  get size(): number {
    return this.held.size;
  }

  /**
   * Runs `fn` on the members of the block at `range`, decoding it with `read` only if no earlier
   * op did; a failed decode is the same failure for every op of that block. The block is let go
   * when the last op counted for it is done, whether its `fn` succeeded or not.
   */
  async use<T>(range: EntryRange, read: () => Promise<SolidMember[]>, fn: (members: SolidMember[]) => Promise<T>): Promise<T> {
    const key = rangeKey(range);
    let block = this.held.get(key);
    if (!block) {
      this.decoded++;
      const left = this.held.size < SOLID_BLOCKS_HELD ? this.uses.get(key) ?? 1 : 1;
      block = { members: read(), left };
      // Seen by this op's await below; a rejection is never left unhandled meanwhile.
      block.members.catch(() => undefined);
      if (left > 1) this.held.set(key, block);
    }
    try {
      return await fn(await block.members);
    } finally {
      if (--block.left <= 0 && this.held.get(key) === block) this.held.delete(key);
    }
  }
}
