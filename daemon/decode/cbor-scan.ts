// A walk over a CBOR message's structure before anything decodes it. The
// decoder's time grows with the number of items, not bytes: a few MB of
// one-byte integers would hold the main thread for hundreds of milliseconds.
// This walk stops at the first item past the limit, so its own time is bounded
// by the limit too; byte strings (the pixels) are stepped over, not read. It
// also refuses what cannot be well-formed (a count or length larger than the
// bytes left), so the decoder never sizes anything from such a field.

/** Items in a DECTRIS message: a start has a few hundred, an image a few dozen. */
export const MAX_CBOR_ITEMS = 100_000;

/** Undefined when the message is within the limits, else what is wrong with it. */
export function cborProblem(bytes: Uint8Array, maxItems = MAX_CBOR_ITEMS): string | undefined {
  const end = bytes.length;
  // Items still expected at each open level; -1: indefinite length, until a break.
  const pending: number[] = [1];
  let pos = 0;
  let items = 0;
  while (pending.length) {
    const level = pending.length - 1;
    if (pending[level] === 0) {
      pending.pop();
      continue;
    }
    if (pos >= end) return `CBOR ends inside an item at byte ${pos}`;
    const ib = bytes[pos++]!;
    if (ib === 0xff) {
      if (pending[level] !== -1) return `CBOR break outside an indefinite-length item at byte ${pos - 1}`;
      pending.pop();
      continue;
    }
    if (pending[level]! > 0) pending[level]!--;
    if (++items > maxItems) return `more than ${maxItems} CBOR items`;
    const major = ib >> 5;
    const info = ib & 31;
    let arg = info;
    if (info >= 24 && info <= 27) {
      const n = 1 << (info - 24);
      if (end - pos < n) return `CBOR ends inside an item at byte ${pos}`;
      arg = 0;
      for (let k = 0; k < n; k++) arg = arg * 256 + bytes[pos + k]!;
      pos += n;
    } else if (info >= 28 && (info !== 31 || major === 0 || major === 1 || major === 6)) return `malformed CBOR at byte ${pos - 1}`;
    const indefinite = info === 31;
    const left = end - pos;
    if (major === 2 || major === 3) {
      if (indefinite) pending.push(-1);
      else if (arg > left) return `a CBOR string of ${arg} bytes with ${left} left`;
      else pos += arg;
    } else if (major === 4 || major === 5) {
      const count = major === 5 ? 2 * arg : arg;
      if (indefinite) pending.push(-1);
      else if (count > left) return `a CBOR ${major === 4 ? 'array' : 'map'} of ${arg} entries with ${left} bytes left`;
      else pending.push(count);
    } else if (major === 6) pending.push(1);
  }
  return pos === end ? undefined : `${end - pos} bytes after the CBOR item`;
}
