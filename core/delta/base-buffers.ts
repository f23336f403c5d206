// Buffers for the patch bases held in memory (core/delta/patch-apply.ts), reused across the
// patches of one delta (issue 14 item 7). A base buffer dropped after its patch is freed only when
// V8 next collects, and V8 lets ~64 MiB of such outside-the-heap buffers pile up before it does:
// three 10 MB bases one after the other took the delta update's RSS 30 MB past what it used.
// Reusing them keeps the bytes allocated to what the patches running at once hold. One pool per
// applyDelta: it is dropped with it, so an idle process (the agent) keeps none.

export class BaseBuffers {
  private readonly free: Buffer[] = [];

  /** A buffer of exactly `size` bytes (a view of a free one large enough, or a new one); its bytes are not cleared. */
  take(size: number): Buffer {
    // The smallest free buffer that fits, so a small base does not take the large one a large base needs.
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= size && (best < 0 || b.length < this.free[best]!.length)) best = i;
    }
    // Its own allocation (never a slice of Node's shared pool), so give() can take all of it back.
    if (best < 0) return Buffer.allocUnsafeSlow(size);
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
