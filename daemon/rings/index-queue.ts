// Lock-free single-producer / single-consumer queue of int32 values (slot
// indices) in a SharedArrayBuffer. Head and tail are free-running int32
// counters: their difference is the length even after they wrap, and the
// capacity is a power of two so `counter & mask` indexes the entries.
const HEAD = 0;
const TAIL = 1;
const HEADER = 2;

export class IndexQueue {
  readonly capacity: number;
  private readonly words: Int32Array;
  private readonly mask: number;

  static create(capacity: number): IndexQueue {
    let cap = 1;
    while (cap < capacity) cap <<= 1;
    return new IndexQueue(new SharedArrayBuffer((HEADER + cap) * 4));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.capacity = this.words.length - HEADER;
    this.mask = this.capacity - 1;
    if (this.capacity < 1 || (this.capacity & this.mask) !== 0) throw new RangeError('queue capacity must be a power of two');
  }

  get length(): number {
    return (Atomics.load(this.words, TAIL) - Atomics.load(this.words, HEAD)) | 0;
  }

  /** Producer side. False when full: the caller decides between waiting and dropping. */
  push(value: number): boolean {
    const tail = Atomics.load(this.words, TAIL);
    if (((tail - Atomics.load(this.words, HEAD)) | 0) >= this.capacity) return false;
    this.words[HEADER + (tail & this.mask)] = value;
    Atomics.store(this.words, TAIL, (tail + 1) | 0);
    Atomics.notify(this.words, TAIL);
    return true;
  }

  /** Consumer side. Undefined when empty. */
  pop(): number | undefined {
    const head = Atomics.load(this.words, HEAD);
    if (head === Atomics.load(this.words, TAIL)) return undefined;
    const value = this.words[HEADER + (head & this.mask)]!;
    Atomics.store(this.words, HEAD, (head + 1) | 0);
    return value;
  }

  /** Consumer side, worker threads only: block until a value may be there. */
  waitForData(timeoutMs: number): void {
    const head = Atomics.load(this.words, HEAD);
    Atomics.wait(this.words, TAIL, head, timeoutMs);
  }

  /** Wakes a consumer blocked in waitForData (used at shutdown). */
  wake(): void {
    Atomics.notify(this.words, TAIL);
  }
}
