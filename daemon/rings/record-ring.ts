// Lock-free single-producer / single-consumer ring of variable-length byte
// records in a SharedArrayBuffer: workers write results, the main thread reads
// them. Records are 8-byte aligned and never straddle the end; a length of
// WRAP marks the unused tail before the ring restarts at offset 0.
const READ = 0;
const WRITE = 1;
const HEADER_BYTES = 16;
const WRAP = -1;

export class RecordRing {
  readonly capacity: number;
  private readonly ctl: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;

  static create(capacityBytes: number): RecordRing {
    let cap = 4096;
    while (cap < capacityBytes) cap <<= 1;
    return new RecordRing(new SharedArrayBuffer(HEADER_BYTES + cap));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.ctl = new Int32Array(buffer, 0, 4);
    this.capacity = buffer.byteLength - HEADER_BYTES;
    this.bytes = new Uint8Array(buffer, HEADER_BYTES, this.capacity);
    this.view = new DataView(buffer, HEADER_BYTES, this.capacity);
  }

  private used(): number {
    return (Atomics.load(this.ctl, WRITE) - Atomics.load(this.ctl, READ)) | 0;
  }

  /**
   * Producer side: reserve `size` bytes, let `fill` write them, publish.
   * Returns false when the record does not fit now (the caller waits or retries).
   */
  tryWrite(size: number, fill: (target: Uint8Array) => void): boolean {
    const need = (4 + size + 7) & ~7;
    if (need > this.capacity / 2) throw new RangeError(`record of ${size} bytes is too large for a ${this.capacity}-byte ring`);
    let write = Atomics.load(this.ctl, WRITE);
    let offset = write & (this.capacity - 1);
    const tail = this.capacity - offset;
    const skip = tail < need ? tail : 0;
    if (this.used() + skip + need > this.capacity) return false;
    if (skip) {
      this.view.setInt32(offset, WRAP, true);
      write = (write + skip) | 0;
      offset = 0;
    }
    this.view.setInt32(offset, size, true);
    fill(this.bytes.subarray(offset + 4, offset + 4 + size));
    Atomics.store(this.ctl, WRITE, (write + need) | 0);
    Atomics.notify(this.ctl, WRITE);
    return true;
  }

  /** Producer side, worker threads only: block until the consumer frees space. */
  waitForSpace(timeoutMs: number): void {
    Atomics.wait(this.ctl, READ, Atomics.load(this.ctl, READ), timeoutMs);
  }

  /** Consumer side: the next record, copied out, or undefined when empty. */
  read(): Uint8Array | undefined {
    for (;;) {
      const read = Atomics.load(this.ctl, READ);
      if (read === Atomics.load(this.ctl, WRITE)) return undefined;
      const offset = read & (this.capacity - 1);
      const size = this.view.getInt32(offset, true);
      if (size === WRAP) {
        Atomics.store(this.ctl, READ, (read + this.capacity - offset) | 0);
        continue;
      }
      const record = this.bytes.slice(offset + 4, offset + 4 + size);
      Atomics.store(this.ctl, READ, (read + ((4 + size + 7) & ~7)) | 0);
      Atomics.notify(this.ctl, READ);
      return record;
    }
  }

  /** Consumer side, main thread: resolves when a record may be there (or after timeoutMs). */
  async waitForRecord(timeoutMs: number): Promise<void> {
    const write = Atomics.load(this.ctl, WRITE);
    if (write !== Atomics.load(this.ctl, READ)) return;
    const r = Atomics.waitAsync(this.ctl, WRITE, write, timeoutMs);
    if (r.async) await r.value;
  }
}
