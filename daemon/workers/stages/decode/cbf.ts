// Byte-offset CBF (PILATUS, EIGER file writers' CBF exports): shape and
// geometry from the header; pixels decoded only if a stage asks, so the
// integration can decode inside its own pass.
import { cbfHeaderText, readCbf } from '../../../decode/cbf';
import { parsePilatusHeader } from '../../../decode/pilatus-header';
import { geometryFromCbfHeader } from '../../../geometry/geometry';
import { native } from '../../../native';
import type { Decoder } from './decoder';

let scratch = new Int32Array(0);

export const cbfDecoder: Decoder = {
  encodings: ['cbf'],
  open(_meta, payload, _context, where, usePoni) {
    const info = native.cbfLocate(payload);
    if (info.fastest === null) throw new Error('CBF gives no dimensions');
    const shape: [number, number] = [info.second ?? 1, info.fastest];
    return {
      shape,
      ...(usePoni ? {} : { geometry: geometryFromCbfHeader(parsePilatusHeader(cbfHeaderText(payload, info)), `${where}: CBF header`) }),
      decode: () => {
        const n = shape[0] * shape[1];
        if (scratch.length < n) scratch = new Int32Array(n);
        return readCbf(payload, { out: scratch.subarray(0, n), source: where }).pixels;
      },
    };
  },
};
