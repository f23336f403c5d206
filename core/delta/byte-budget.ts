// A budget of bytes that work running at once may hold in memory (issue 14 item 7): apply-delta
// applies several patches in parallel, and each holds its base (up to OLD_IN_MEMORY_MAX) and
// brotli decoders whose windows grow with the output. Eight of those at once took the delta
// update of bench/apply's 50 MB tree to 138 MiB of RSS; the budget lets a patch start only while
// what is held stays under it, so the largest files go one or two at a time and small ones in
// parallel. A claim larger than the whole budget still runs, alone, so nothing waits forever.

export class ByteBudget {
  private held = 0;
  private highest = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  /** Bytes claimed now. */
  get current(): number {
    return this.held;
  }

  /** The most bytes ever claimed at once. */
  get peak(): number {
    return this.highest;
  }

  /** Runs `fn` once `bytes` fit beside what is held (or nothing is held), and gives them back when it settles. */
  async use<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    while (this.held > 0 && this.held + bytes > this.limit) await new Promise<void>((wake) => this.waiting.push(wake));
    this.held += bytes;
    this.highest = Math.max(this.highest, this.held);
    try {
      return await fn();
    } finally {
      this.held -= bytes;
      // Every waiter looks again: whichever fits now goes, the others wait for the next release.
      for (const wake of this.waiting.splice(0)) wake();
    }
  }
}
