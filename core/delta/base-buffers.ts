// Buffers for the patch bases held in memory (core/delta/patch-apply.ts), reused across the
// patches of one delta (issue 14 item 7). A base buffer dropped after its patch is freed only when
// V8 next collects, and V8 lets ~64 MiB of such outside-the-heap buffers pile up before it does:
// three 10 MB bases one after the other took the delta update's RSS 30 MB past what it used.
// Reusing them keeps the bytes allocated to what the patches running at once hold. One pool per
// applyDelta: it is dropped with it, so an idle process (the agent) keeps none.
//
// A large base gets a buffer of the largest size a held base can have (`largest`), not of its own
// size. Sized to each base, a pool kept every smaller buffer beside the next larger one when the
// large patches happened to run smallest first (tsc.js 6 MB, typescript.js 8.9 MB, esbuild 10 MB
// in bench/apply: 25 MiB held where 10 were in use). The allocation is uninitialized, so the pages
// a base does not fill are never touched: they take address space, not memory.

/** Bases from this size on share buffers of `largest` bytes; smaller ones get buffers of their own size. */
export const LARGE_BASE = 1024 * 1024;

export class BaseBuffers {
  private readonly free: Buffer[] = [];

  /** `largest`: the largest base held in memory (core/delta/patch-apply.ts OLD_IN_MEMORY_MAX). */
  constructor(private readonly largest: number) {}

  /** A buffer of exactly `size` bytes (a view of a free one large enough, or a new one); its bytes are not cleared. */
  take(size: number): Buffer {
    // The smallest free buffer that fits, of the same kind: a small base never takes the buffer a large base needs.
    const large = size >= LARGE_BASE;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= size && (b.length >= LARGE_BASE) === large && (best < 0 || b.length < this.free[best]!.length)) best = i;
    }
    // Its own allocation (never a slice of Node's shared pool), so give() can take all of it back.
    if (best < 0) return Buffer.allocUnsafeSlow(large ? Math.max(size, this.largest) : size).subarray(0, size);
    const [b] = this.free.splice(best, 1);
    return b!.subarray(0, size);
  }

  /** Gives back a buffer `take` returned, once nothing reads it any more. */
  give(buf: Buffer): void {
    // The whole allocation, not only the view the patch used.
    this.free.push(Buffer.from(buf.buffer));
  }

  /** Bytes allocated and free now (for tests). */
  get freeBytes(): number {
    return this.free.reduce((n, b) => n + b.length, 0);
  }
}
