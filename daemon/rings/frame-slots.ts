// Fixed-size frame slots in one SharedArrayBuffer. Ingest writes a frame's
// metadata and payload straight into a slot (the one copy from the socket);
// the worker decodes it in place. Which side owns a slot is decided by the
// queues, never by the slots themselves.

export const META_BYTES = 4096;
const INFO_WORDS = 2; // [meta length, payload length]

export interface SlotLayout {
  slots: number;
  payloadBytes: number;
}

export class FrameSlots {
  readonly slots: number;
  readonly payloadBytes: number;
  private readonly info: Int32Array;
  private readonly data: SharedArrayBuffer;
  private readonly stride: number;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  static create(layout: SlotLayout): FrameSlots {
    const stride = META_BYTES + layout.payloadBytes;
    return new FrameSlots(new SharedArrayBuffer(layout.slots * INFO_WORDS * 4), new SharedArrayBuffer(layout.slots * stride), layout);
  }

  constructor(
    readonly infoBuffer: SharedArrayBuffer,
    readonly dataBuffer: SharedArrayBuffer,
    layout: SlotLayout,
  ) {
    this.slots = layout.slots;
    this.payloadBytes = layout.payloadBytes;
    this.stride = META_BYTES + layout.payloadBytes;
    this.info = new Int32Array(infoBuffer);
    this.data = dataBuffer;
  }

  get layout(): SlotLayout {
    return { slots: this.slots, payloadBytes: this.payloadBytes };
  }

  /** Where ingest writes a payload of `size` bytes (the frame is not published yet). */
  payloadTarget(slot: number, size: number): Uint8Array {
    if (size > this.payloadBytes) throw new RangeError(`frame of ${size} bytes exceeds the slot size of ${this.payloadBytes} bytes`);
    return new Uint8Array(this.data, slot * this.stride + META_BYTES, size);
  }

  setMeta(slot: number, meta: object, payloadLength: number): void {
    const text = this.encoder.encode(JSON.stringify(meta));
    // Checked before anything is written: a frame that does not fit is refused, and the slot is untouched.
    if (text.length > META_BYTES) throw new RangeError(`frame metadata of ${text.length} bytes exceeds the ${META_BYTES} bytes a slot holds (series name or sender meta too large)`);
    new Uint8Array(this.data, slot * this.stride, META_BYTES).set(text);
    this.info[slot * INFO_WORDS] = text.length;
    this.info[slot * INFO_WORDS + 1] = payloadLength;
  }

  meta<T>(slot: number): T {
    const len = this.info[slot * INFO_WORDS]!;
    // TextDecoder refuses views on shared memory: copy the (small) metadata out.
    const bytes = new Uint8Array(this.data, slot * this.stride, len).slice();
    return JSON.parse(this.decoder.decode(bytes)) as T;
  }

  payload(slot: number): Uint8Array {
    return new Uint8Array(this.data, slot * this.stride + META_BYTES, this.info[slot * INFO_WORDS + 1]!);
  }
}
