// A bounded on-disk spool for MQTT messages the broker has not acknowledged.
// Segment files are appended to in order. A cursor marks the oldest
// unacknowledged record, so a restart replays what the last run left. When the
// spool is full, the oldest records are dropped and reported one by one.
//
// The directory holds:
//   <seq>.seg  records in append order. A segment is deleted once every record
//              in it is acknowledged or dropped.
//   cursor     "BSC1", CRC-32 of the next 16 bytes, u64 segment seq, u64 offset
//   lock       pid of the process that owns the directory
//
// Record: "BSR1" | u32 LE body length | u32 LE CRC-32 of the body | body
// Body:   u8 flags (bits 0-1 QoS, bit 2 retain) | u8 0 | u16 LE topic length |
//         u16 LE content-type length | u16 LE ref length |
//         topic | content type | ref (JSON, may be empty) | payload
//
// Durability: each record goes to the file with one write(2) when it is
// appended, so the page cache has it and a crash of the process loses nothing.
// fdatasync of the segments, the cursor and the directory runs off the main
// thread at most every syncMs, and synchronously at close. A power cut can
// lose the last syncMs of records. A stale cursor only replays records again:
// delivery is at least once.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Logger } from '../system/logger';

/** Which frame a message is the result of, across restarts: frames rows are keyed by (run_id, seq); series and frame name it in events. */
export interface FrameRef {
  run: number;
  seq: number;
  series: string;
  frame: number;
}

export interface SpoolMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  contentType?: string;
  ref?: FrameRef;
}

export interface SpooledMessage extends SpoolMessage {
  /** Pass to ack() once the broker has acknowledged the message. */
  id: number;
}

export interface SpoolOptions {
  directory: string;
  maxBytes: number;
  /** Default: maxBytes / 16, between 4 KiB and 8 MiB. */
  segmentBytes?: number;
  /** Longest time between fdatasyncs while records are being written. Default 200 ms. */
  syncMs?: number;
  log: Logger;
  /**
   * A record that will never be sent: dropped to make room (the oldest first),
   * or unreadable on disk. `id` is set when next() had handed the record out.
   */
  onDrop: (topic: string, reason: string, ref: FrameRef | undefined, id: number | undefined) => void;
}

/** Topic reported for records whose bytes are damaged: their real topic cannot be trusted. */
export const CORRUPT_TOPIC = '(corrupt spool record)';

const RECORD_MAGIC = 0x31525342; // "BSR1" read as u32 LE
const CURSOR_MAGIC = 0x31435342; // "BSC1"
const HEADER = 12;
const BODY_HEADER = 8;
const SEGMENT_RE = /^(\d{20})\.seg$/;

/** CRC-32 (zlib's), continuing from `prev`. */
const crc32: (data: Uint8Array, prev?: number) => number =
  typeof zlib.crc32 === 'function'
    ? (d, prev = 0) => zlib.crc32(d, prev)
    : (() => {
        // Node before 20.15 has no zlib.crc32.
        const table = new Uint32Array(256).map((_, n) => {
          let c = n;
          for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
          return c >>> 0;
        });
        return (d: Uint8Array, prev = 0) => {
          let c = (prev ^ 0xffffffff) >>> 0;
          for (let i = 0; i < d.length; i++) c = table[(c ^ d[i]!) & 0xff]! ^ (c >>> 8);
          return (c ^ 0xffffffff) >>> 0;
        };
      })();

interface Segment {
  seq: number;
  size: number;
  fd: number;
}

interface Pos {
  seq: number;
  off: number;
}

interface Handed {
  id: number;
  end: Pos;
  /** false for a damaged region the reader stepped over: it is resolved already. */
  record: boolean;
  acked: boolean;
  topic: string;
  ref: FrameRef | undefined;
}

type Read = { kind: 'record'; msg: SpoolMessage; end: Pos } | { kind: 'corrupt'; reason: string; end: Pos };

function segmentName(seq: number): string {
  return `${String(seq).padStart(20, '0')}.seg`;
}

function encode(m: SpoolMessage): { head: Buffer; payload: Buffer } {
  const topic = Buffer.from(m.topic);
  const ct = Buffer.from(m.contentType ?? '');
  const ref = m.ref ? Buffer.from(JSON.stringify(m.ref)) : Buffer.alloc(0);
  if (topic.length > 0xffff || ct.length > 0xffff || ref.length > 0xffff) throw new Error('spool: topic, content type or frame reference longer than 65535 bytes');
  const metaLen = BODY_HEADER + topic.length + ct.length + ref.length;
  const head = Buffer.alloc(HEADER + metaLen);
  head.writeUInt32LE(RECORD_MAGIC, 0);
  head.writeUInt32LE(metaLen + m.payload.length, 4);
  head.writeUInt8((m.qos & 3) | (m.retain ? 4 : 0), HEADER);
  head.writeUInt16LE(topic.length, HEADER + 2);
  head.writeUInt16LE(ct.length, HEADER + 4);
  head.writeUInt16LE(ref.length, HEADER + 6);
  let p = HEADER + BODY_HEADER;
  p += topic.copy(head, p);
  p += ct.copy(head, p);
  ref.copy(head, p);
  head.writeUInt32LE(crc32(m.payload, crc32(head.subarray(HEADER))), 8);
  return { head, payload: m.payload };
}

/** Parses a body whose CRC matched; throws when its lengths do not add up. */
function decodeBody(body: Buffer): SpoolMessage {
  if (body.length < BODY_HEADER) throw new Error('body shorter than its header');
  const flags = body.readUInt8(0);
  const tl = body.readUInt16LE(2);
  const cl = body.readUInt16LE(4);
  const rl = body.readUInt16LE(6);
  const p = BODY_HEADER;
  if (p + tl + cl + rl > body.length) throw new Error('field lengths exceed the body');
  const topic = body.toString('utf8', p, p + tl);
  const contentType = body.toString('utf8', p + tl, p + tl + cl);
  const ref = rl ? (JSON.parse(body.toString('utf8', p + tl + cl, p + tl + cl + rl)) as FrameRef) : undefined;
  return {
    topic,
    payload: body.subarray(p + tl + cl + rl),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & 4) !== 0,
    ...(contentType ? { contentType } : {}),
    ...(ref ? { ref } : {}),
  };
}

/** The record starting at `off` in `buf`, if it is whole and its CRC matches: its total length. */
function validAt(buf: Buffer, off: number): number | undefined {
  if (off + HEADER > buf.length || buf.readUInt32LE(off) !== RECORD_MAGIC) return undefined;
  const len = buf.readUInt32LE(off + 4);
  if (len < BODY_HEADER || off + HEADER + len > buf.length) return undefined;
  return crc32(buf.subarray(off + HEADER, off + HEADER + len)) === buf.readUInt32LE(off + 8) ? HEADER + len : undefined;
}

/** First offset after `from` where a valid record starts, or buf.length. */
function resync(buf: Buffer, from: number): number {
  const magic = Buffer.from('BSR1');
  for (let i = buf.indexOf(magic, from); i >= 0; i = buf.indexOf(magic, i + 1)) if (validAt(buf, i) !== undefined) return i;
  return buf.length;
}

export class Spool {
  private readonly segs: Segment[] = [];
  /** Oldest record not yet acknowledged or dropped (persisted as the cursor). */
  private cursor: Pos;
  /** Next record next() hands out; cursor <= read. */
  private read: Pos;
  /** Records handed out by next() and not yet resolved, oldest first; ids are consecutive. */
  private handed: Handed[] = [];
  private nextId = 1;
  private total = 0;
  private count = 0;
  private readonly capacity: number;
  private readonly segmentBytes: number;
  private readonly unsynced = new Set<number>();
  private readonly closeAfterSync: number[] = [];
  private readonly reportedCorrupt = new Set<string>();
  private cursorDirty = false;
  private dirDirty = false;
  private syncing = 0;
  private closed = false;
  private readonly cursorFd: number;
  private readonly dirFd: number;
  private readonly timer: NodeJS.Timeout;
  private readonly lockPath: string;

  private constructor(private readonly opts: SpoolOptions) {
    const dir = opts.directory;
    this.segmentBytes = opts.segmentBytes ?? Math.min(8 << 20, Math.max(4096, Math.floor(opts.maxBytes / 16)));
    // The head segment's consumed part stays on disk until the whole segment is
    // done, so records may use all but one segment: the files stay within maxBytes.
    this.capacity = Math.max(0, opts.maxBytes - this.segmentBytes);
    fs.mkdirSync(dir, { recursive: true });
    this.lockPath = path.join(dir, 'lock');
    takeLock(this.lockPath);
    try {
      this.dirFd = fs.openSync(dir, 'r');
      this.cursorFd = fs.openSync(path.join(dir, 'cursor'), fs.existsSync(path.join(dir, 'cursor')) ? 'r+' : 'w+');

      const seqs = fs
        .readdirSync(dir)
        .map((f) => SEGMENT_RE.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
      const saved = this.readCursor();
      for (const seq of seqs) {
        const file = path.join(dir, segmentName(seq));
        if (saved && seq < saved.seq) {
          // Entirely acknowledged; the last run stopped before deleting it.
          fs.unlinkSync(file);
          continue;
        }
        this.segs.push({ seq, size: fs.statSync(file).size, fd: fs.openSync(file, 'r+') });
      }
      if (!this.segs.length) this.segs.push(this.createSegment((saved?.seq ?? 0) + 1));
      const head = this.segs[0]!;
      const tail = this.segs.at(-1)!;
      let start = 0;
      if (saved && saved.seq === head.seq) start = Math.min(saved.off, head.size);
      else if (saved && saved.seq > tail.seq) start = -1; // everything was acknowledged
      for (const s of this.segs) this.scan(s, s === head ? Math.max(0, start) : 0, s === tail);
      this.cursor = this.normalize(start < 0 ? { seq: tail.seq, off: tail.size } : { seq: head.seq, off: Math.min(start, head.size) });
      if (start < 0) this.count = 0;
      this.read = this.cursor;
      this.dropConsumedSegments();
      if (this.empty) this.reset();
    } catch (e) {
      fs.rmSync(this.lockPath, { force: true });
      throw e;
    }
    this.timer = setInterval(() => this.sync(), opts.syncMs ?? 200);
    this.timer.unref();
  }

  static open(opts: SpoolOptions): Spool {
    return new Spool(opts);
  }

  /** Records held: not yet acknowledged nor dropped. */
  get records(): number {
    return this.count;
  }

  /** Bytes of those records on disk. */
  get bytes(): number {
    return this.total - this.cursor.off;
  }

  get empty(): boolean {
    return this.atTail(this.cursor);
  }

  /** True while next() has records to hand out. */
  get unread(): boolean {
    return !this.atTail(this.read);
  }

  /**
   * Appends a message after every record held. When the spool is full, the
   * oldest records are dropped first (reported through onDrop). Returns why the
   * message could not be stored, or undefined when it was.
   */
  append(m: SpoolMessage): string | undefined {
    if (this.closed) return 'spool closed';
    const { head, payload } = encode(m);
    const bytes = head.length + payload.length;
    if (bytes > this.capacity) return `message of ${bytes} bytes is larger than the spool (mqtt.spool.max_mb)`;
    while (this.bytes + bytes > this.capacity) this.dropOldest('spool full (mqtt.spool.max_mb): oldest message dropped');
    let tail = this.segs.at(-1)!;
    if (tail.size > 0 && tail.size + bytes > this.segmentBytes) tail = this.roll();
    let written = 0;
    try {
      written = fs.writevSync(tail.fd, [head, payload], tail.size);
      if (written !== bytes) throw new Error(`short write (${written} of ${bytes} bytes)`);
    } catch (e) {
      // Leave no partial record behind: the next append starts at a record boundary.
      try {
        fs.ftruncateSync(tail.fd, tail.size);
      } catch {
        // The open-time scan truncates a torn tail anyway.
      }
      return `spool write failed: ${(e as Error).message}`;
    }
    tail.size += bytes;
    this.total += bytes;
    this.count++;
    this.unsynced.add(tail.fd);
    return undefined;
  }

  /** Hands out the oldest record not handed out yet, or undefined. */
  next(): SpooledMessage | undefined {
    while (this.unread) {
      const r = this.readAt(this.read);
      const id = this.nextId++;
      if (r.kind === 'corrupt') {
        this.reportCorrupt(this.read, r.reason);
        this.handed.push({ id, end: r.end, record: false, acked: true, topic: CORRUPT_TOPIC, ref: undefined });
        this.read = r.end;
        this.settle();
        continue;
      }
      this.handed.push({ id, end: r.end, record: true, acked: false, topic: r.msg.topic, ref: r.msg.ref });
      this.read = r.end;
      return { ...r.msg, id };
    }
    return undefined;
  }

  /** The broker acknowledged a record handed out by next(). Unknown ids (from before a rewind) are ignored. */
  ack(id: number): void {
    const first = this.handed[0];
    if (!first) return;
    const h = this.handed[id - first.id];
    if (!h || h.id !== id) return;
    h.acked = true;
    this.settle();
  }

  /** The connection was lost: records handed out and not acknowledged will be handed out again, in order. */
  rewind(): void {
    this.handed = [];
    this.read = this.cursor;
  }

  /** Persists the cursor and syncs everything to disk. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.writeCursor();
    // Every segment, not only the unsynced ones: an fdatasync started by sync() may still be running.
    for (const fd of [...this.segs.map((s) => s.fd), this.cursorFd]) fs.fdatasyncSync(fd);
    fs.fsyncSync(this.dirFd);
    for (const s of this.segs) fs.closeSync(s.fd);
    for (const fd of [...this.closeAfterSync, this.cursorFd, this.dirFd]) fs.closeSync(fd);
    fs.rmSync(this.lockPath, { force: true });
  }

  private atTail(p: Pos): boolean {
    const tail = this.segs.at(-1)!;
    return p.seq === tail.seq && p.off >= tail.size;
  }

  private seg(seq: number): Segment {
    const s = this.segs.find((x) => x.seq === seq);
    if (!s) throw new Error(`spool: segment ${seq} is gone`);
    return s;
  }

  /** Moves a position at the end of a finished segment to the start of the next one. */
  private normalize(p: Pos): Pos {
    let i = this.segs.findIndex((s) => s.seq === p.seq);
    while (i < this.segs.length - 1 && p.off >= this.segs[i]!.size) p = { seq: this.segs[++i]!.seq, off: 0 };
    return p;
  }

  /** Pops resolved records from the front of `handed` and moves the cursor past them. */
  private settle(): void {
    while (this.handed[0]?.acked) {
      const h = this.handed.shift()!;
      if (h.record) this.count = Math.max(0, this.count - 1);
      this.advance(h.end);
    }
  }

  private advance(to: Pos): void {
    this.cursor = this.normalize(to);
    if (!this.handed.length && this.before(this.read, this.cursor)) this.read = this.cursor;
    this.cursorDirty = true;
    this.dropConsumedSegments();
    if (this.empty) this.reset();
  }

  private before(a: Pos, b: Pos): boolean {
    return a.seq < b.seq || (a.seq === b.seq && a.off < b.off);
  }

  private dropOldest(reason: string): void {
    const h = this.handed.shift();
    if (h) {
      // Handed out but not acknowledged: the oldest record, so it goes first.
      if (h.record) this.count = Math.max(0, this.count - 1);
      this.opts.onDrop(h.topic, reason, h.ref, h.id);
      this.advance(h.end);
      this.settle();
      return;
    }
    const r = this.readAt(this.cursor);
    if (r.kind === 'record') {
      this.count = Math.max(0, this.count - 1);
      this.opts.onDrop(r.msg.topic, reason, r.msg.ref, undefined);
    } else {
      this.reportCorrupt(this.cursor, r.reason);
    }
    this.advance(r.end);
  }

  private reportCorrupt(at: Pos, reason: string): void {
    const key = `${at.seq}:${at.off}`;
    if (this.reportedCorrupt.has(key)) return;
    this.reportedCorrupt.add(key);
    this.opts.log.warn('damaged spool record skipped', { directory: this.opts.directory, segment: segmentName(at.seq), offset: at.off, reason });
    this.opts.onDrop(CORRUPT_TOPIC, `damaged spool record skipped: ${reason}`, undefined, undefined);
  }

  /** Reads the record at `p` (which must not be at the tail), or the damaged region that starts there. */
  private readAt(p: Pos): Read {
    const s = this.seg(p.seq);
    const left = s.size - p.off;
    const header = Buffer.alloc(HEADER);
    const corrupt = (reason: string): Read => {
      const rest = Buffer.allocUnsafe(left);
      fs.readSync(s.fd, rest, 0, left, p.off);
      return { kind: 'corrupt', reason, end: this.normalize({ seq: p.seq, off: p.off + resync(rest, 1) }) };
    };
    if (left < HEADER) return corrupt(`${left} stray bytes at the end of the segment`);
    fs.readSync(s.fd, header, 0, HEADER, p.off);
    if (header.readUInt32LE(0) !== RECORD_MAGIC) return corrupt('no record marker');
    const len = header.readUInt32LE(4);
    if (len < BODY_HEADER || len > left - HEADER) return corrupt(`record length ${len} does not fit the segment`);
    const body = Buffer.allocUnsafe(len);
    fs.readSync(s.fd, body, 0, len, p.off + HEADER);
    if (crc32(body) !== header.readUInt32LE(8)) return corrupt('CRC mismatch');
    try {
      return { kind: 'record', msg: decodeBody(body), end: this.normalize({ seq: p.seq, off: p.off + HEADER + len }) };
    } catch (e) {
      return corrupt((e as Error).message);
    }
  }

  /** Open-time check of one segment: counts valid records from `from` on, and cuts a torn tail off the last segment. */
  private scan(s: Segment, from: number, isTail: boolean): void {
    const buf = Buffer.allocUnsafe(s.size);
    fs.readSync(s.fd, buf, 0, s.size, 0);
    let off = 0;
    let lastGood = 0;
    while (off < buf.length) {
      const n = validAt(buf, off);
      if (n === undefined) {
        off = resync(buf, off + 1);
        continue;
      }
      if (off >= from) this.count++;
      off += n;
      lastGood = off;
    }
    this.total += s.size;
    if (isTail && lastGood < s.size) {
      // A crash in the middle of a write: nothing valid follows, so cut it off.
      this.opts.log.warn('spool: torn record at the end of the last segment truncated', { directory: this.opts.directory, segment: segmentName(s.seq), offset: lastGood, bytes: s.size - lastGood });
      fs.ftruncateSync(s.fd, lastGood);
      this.total -= s.size - lastGood;
      s.size = lastGood;
      this.unsynced.add(s.fd);
    }
  }

  private createSegment(seq: number): Segment {
    const fd = fs.openSync(path.join(this.opts.directory, segmentName(seq)), 'w+');
    this.dirDirty = true;
    return { seq, size: 0, fd };
  }

  private roll(): Segment {
    const s = this.createSegment(this.segs.at(-1)!.seq + 1);
    this.segs.push(s);
    return s;
  }

  /** Deletes segments entirely before the cursor. */
  private dropConsumedSegments(): void {
    while (this.segs.length > 1 && this.segs[0]!.seq < this.cursor.seq) {
      const s = this.segs.shift()!;
      this.total -= s.size;
      this.unsynced.delete(s.fd);
      // An fdatasync may still be running on it in the thread pool.
      if (this.syncing) this.closeAfterSync.push(s.fd);
      else fs.closeSync(s.fd);
      fs.unlinkSync(path.join(this.opts.directory, segmentName(s.seq)));
      this.dirDirty = true;
    }
  }

  /** Nothing held: keep one empty segment so the directory does not grow. */
  private reset(): void {
    this.dropConsumedSegments();
    const tail = this.segs.at(-1)!;
    if (tail.size > 0) {
      fs.ftruncateSync(tail.fd, 0);
      this.total -= tail.size;
      tail.size = 0;
      this.unsynced.add(tail.fd);
    }
    this.cursor = this.read = { seq: tail.seq, off: 0 };
    this.count = 0;
    this.handed = [];
    this.cursorDirty = true;
  }

  private readCursor(): Pos | undefined {
    const b = Buffer.alloc(24);
    const n = fs.readSync(this.cursorFd, b, 0, 24, 0);
    if (n === 0) return undefined;
    if (n < 24 || b.readUInt32LE(0) !== CURSOR_MAGIC || crc32(b.subarray(8)) !== b.readUInt32LE(4)) {
      this.opts.log.warn('spool: cursor file damaged; replaying the spool from its first record (duplicates possible)', { directory: this.opts.directory });
      return undefined;
    }
    return { seq: Number(b.readBigUInt64LE(8)), off: Number(b.readBigUInt64LE(16)) };
  }

  private writeCursor(): void {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(CURSOR_MAGIC, 0);
    b.writeBigUInt64LE(BigInt(this.cursor.seq), 8);
    b.writeBigUInt64LE(BigInt(this.cursor.off), 16);
    b.writeUInt32LE(crc32(b.subarray(8)), 4);
    fs.writeSync(this.cursorFd, b, 0, 24, 0);
    this.cursorDirty = false;
    this.unsynced.add(this.cursorFd);
  }

  /** Periodic durability, off the main thread: the main thread only issues the calls. */
  private sync(): void {
    if (this.syncing || this.closed) return;
    if (this.cursorDirty) this.writeCursor();
    const fds = [...this.unsynced];
    this.unsynced.clear();
    const dir = this.dirDirty;
    this.dirDirty = false;
    if (!fds.length && !dir) return;
    this.syncing = fds.length + (dir ? 1 : 0);
    const done = (err: NodeJS.ErrnoException | null) => {
      if (err && !this.closed) this.opts.log.warn('spool: fdatasync failed', { directory: this.opts.directory, error: err.message });
      if (--this.syncing === 0 && !this.closed) for (const fd of this.closeAfterSync.splice(0)) fs.closeSync(fd);
    };
    for (const fd of fds) fs.fdatasync(fd, done);
    if (dir) fs.fsync(this.dirFd, done);
  }
}

/** One process per spool directory: two writers would interleave records. */
function takeLock(file: string): void {
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const pid = Number(fs.readFileSync(file, 'utf8').trim());
  let alive = false;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      alive = true;
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  if (alive) throw new Error(`spool directory ${path.dirname(file)} is in use by process ${pid} (another beamedge with the same mqtt.spool.directory?); if that is not beamedge, remove ${file}`);
  fs.writeFileSync(file, String(process.pid));
}
