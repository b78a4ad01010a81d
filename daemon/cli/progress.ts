// A one-line progress bar on a terminal: redrawn at most 10 times a second,
// and nothing at all when the stream is not a TTY (logs, pipes, tests).
import type { WriteStream } from 'node:tty';

const INTERVAL_MS = 100;
const WIDTH = 30;

export class Progress {
  private done = 0;
  private last = 0;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private total: number,
    private readonly stream: Pick<WriteStream, 'write'> & { isTTY?: boolean } = process.stderr,
  ) {
    this.tty = stream.isTTY === true;
  }

  advance(n = 1): void {
    this.done += n;
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < INTERVAL_MS && this.done < this.total) return;
    this.last = now;
    this.draw();
  }

  /** More work than announced (an input turned out to hold several frames). */
  grow(n: number): void {
    this.total += n;
  }

  /** Clears the line, so what is printed next starts clean. */
  finish(): void {
    if (this.tty) this.stream.write('\r\x1b[K');
  }

  private draw(): void {
    const share = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const filled = Math.round(share * WIDTH);
    const bar = '#'.repeat(filled) + '-'.repeat(WIDTH - filled);
    this.stream.write(`\r${this.label} [${bar}] ${this.done}/${this.total} (${(share * 100).toFixed(0)}%)\x1b[K`);
  }
}
