// The fsyncs of the files a delta writes (SECURITY.md row 18; apply-delta.ts), started while the
// delta is still being applied instead of all after it (issue 14 item 7). A file is added once it
// is complete (written and given its mode); a few fsyncs run beside the work, so the thread pool
// keeps room for the patches' decoders and reads, and finish() runs the rest many at a time and
// resolves only when every file added is fsynced. An update of 1,054 small files (lodash) spent
// ~150 ms in fsyncs after its files were written, while the disk and the pool sat idle during the
// ~300 ms of writing them.

import { open } from 'node:fs/promises';

/** Fsyncs at once while the delta is still being applied. */
export const FSYNC_BESIDE_WORK = 2;
/** Fsyncs at once once every file is written: the disk sees one batch instead of a flush per file. */
export const FSYNC_AT_END = 32;

export class FsyncQueue {
  private readonly queue: string[] = [];
  private running = 0;
  private limit = FSYNC_BESIDE_WORK;
  private failure: { err: unknown } | undefined;
  private wakeIdle: (() => void) | undefined;

  /** `skip`: the test seam that turns these fsyncs off (skipsFsync('delta.file')). */
  constructor(private readonly skip = false) {}

  /** A complete file to fsync. */
  add(path: string): void {
    if (this.skip) return;
    this.queue.push(path);
    this.pump();
  }

  /** Fsyncs everything added (many at a time from now on); rejects with the first failure. */
  async finish(): Promise<void> {
    this.limit = FSYNC_AT_END;
    this.pump();
    await this.idle();
    if (this.failure) throw this.failure.err;
  }

  /** Drops what has not started and waits for what has (the delta failed: its files are removed). */
  async abandon(): Promise<void> {
    this.queue.length = 0;
    await this.idle();
  }

  private idle(): Promise<void> {
    if (this.running === 0 && (this.queue.length === 0 || this.failure)) return Promise.resolve();
    return new Promise((wake) => { this.wakeIdle = wake; });
  }

  private pump(): void {
    while (this.running < this.limit && this.queue.length > 0 && !this.failure) {
      const path = this.queue.shift()!;
      this.running++;
      void fsyncFile(path).then(
        () => this.settled(),
        (err: unknown) => {
          this.failure ??= { err };
          this.settled();
        },
      );
    }
  }

  private settled(): void {
    this.running--;
    this.pump();
    if (this.running === 0 && (this.queue.length === 0 || this.failure)) {
      const wake = this.wakeIdle;
      this.wakeIdle = undefined;
      wake?.();
    }
  }
}

async function fsyncFile(path: string): Promise<void> {
  const h = await open(path, 'r');
  try { await h.sync(); } finally { await h.close(); }
}
