// Reading a list of files in turn, each one read on libuv's thread pool while
// the caller is still busy with the one before: `beamedge integrate` spends
// its main thread in the native integration pass, and the copy of the next
// 6 MB frame out of the page cache overlaps it instead of following it. Two
// buffers, reused (no fresh multi-megabyte buffer to fault in per file): the
// bytes of one file stay valid until the next file's are asked for.
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { fileError } from './read-file';

type Slot = 0 | 1;
type Outcome = { slot: Slot; bytes: Uint8Array } | { slot: Slot; error: unknown };

export class ReadAhead {
  private readonly buffers: [Buffer, Buffer] = [Buffer.alloc(0), Buffer.alloc(0)];
  /** The buffer whose bytes the caller holds. */
  private held: Slot = 1;
  private next: { index: number; done: Promise<Outcome> } | undefined;

  /** `ahead(i)`: whether file i is read ahead (the caller reads some files, HDF5 ones, its own way). */
  constructor(
    private readonly files: readonly string[],
    private readonly ahead: (index: number) => boolean,
  ) {}

  /** The bytes of files[index] (errors name the file); starts reading the next file that is read ahead. */
  async get(index: number): Promise<Uint8Array> {
    if (this.next && this.next.index !== index) await this.next.done; // not asked for after all: let it finish with its buffer
    const outcome = await (this.next?.index === index ? this.next.done : this.start(index, this.held === 0 ? 1 : 0));
    this.next = undefined;
    this.held = outcome.slot;
    let after = index + 1;
    while (after < this.files.length && !this.ahead(after)) after++;
    if (after < this.files.length) this.next = { index: after, done: this.start(after, this.held === 0 ? 1 : 0) };
    if ('error' in outcome) throw fileError(this.files[index]!, outcome.error);
    return outcome.bytes;
  }

  /**
   * Opens and sizes the file here (fast), then reads it in one request on the
   * thread pool: one request, because each further step would wait for the
   * main thread to come back to the event loop. Never rejects.
   */
  private start(index: number, slot: Slot): Promise<Outcome> {
    let fd: number | undefined;
    try {
      fd = openSync(this.files[index]!, 'r');
      // One byte beyond the size, so a file read whole fits with room to spare and the next read says it ended.
      this.reserve(slot, fstatSync(fd).size + 1);
    } catch (error) {
      if (fd !== undefined) closeSync(fd);
      return Promise.resolve({ slot, error });
    }
    const opened = fd;
    const buf = this.buffers[slot];
    return new Promise<Outcome>((resolve) =>
      read(opened, buf, 0, buf.length, null, (err, got) => {
        try {
          if (err) throw err;
          resolve({ slot, bytes: this.rest(opened, slot, got) });
        } catch (error) {
          resolve({ slot, error });
        } finally {
          closeSync(opened);
        }
      }),
    );
  }

  /**
   * The file's bytes: what the thread pool read, then the rest read here
   * until the end (nothing for a regular file read whole; a pipe, or a file
   * that grew after its size was taken, gives more).
   */
  private rest(fd: number, slot: Slot, got: number): Uint8Array {
    let n = got;
    let more = got; // 0: the end
    while (more > 0) {
      if (n === this.buffers[slot].length) {
        const grown = Buffer.allocUnsafe(n * 2);
        this.buffers[slot].copy(grown);
        this.buffers[slot] = grown;
      }
      more = readSync(fd, this.buffers[slot], n, this.buffers[slot].length - n, null);
      n += more;
    }
    return this.buffers[slot].subarray(0, n);
  }

  private reserve(slot: Slot, bytes: number): void {
    const had = this.buffers[slot];
    if (bytes > had.length) this.buffers[slot] = Buffer.allocUnsafe(Math.max(bytes, Math.ceil(had.length * 1.25)));
  }
}
