// Natural name order (img_2 before img_10) as plain string keys. Sorting keys
// with the built-in comparison is about three times faster than
// Intl.Collator's numeric compare, which matters for a first listing of 100k
// files on the main thread.

/** Each run of digits becomes its length (4 digits) then the digits without leading zeros. */
export function naturalKey(name: string): string {
  // "\0" cannot occur in a file name: it ends the key, and ties (img_2, img_002) fall back to the name.
  return (
    name.replace(/\d+/g, (digits) => {
      const d = digits.replace(/^0+(?=\d)/, '');
      return String(d.length).padStart(4, '0') + d;
    }) +
    '\0' +
    name
  );
}

export function nameOfKey(key: string): string {
  return key.slice(key.indexOf('\0') + 1);
}

/** Merges two sorted key lists into one. */
export function mergeSorted(a: string[], b: string[]): string[] {
  if (!a.length) return b;
  if (!b.length) return a;
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! <= b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}
