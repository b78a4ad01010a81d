// The detector side of DECTRIS stream v2, for `replay --zmq-v2` and
// `simulate --zmq-v2`: a ZeroMQ PUSH socket sending CBOR start/image/end
// messages with the same tags a DCU uses.
import type { Encoder as CborEncoder, Tag as CborTag } from 'cbor-x' with { 'resolution-mode': 'import' };
import { native } from '../native';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Encoder, Tag } = require('cbor-x') as { Encoder: typeof CborEncoder; Tag: typeof CborTag };
const cbor = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });

const TYPED_TAG = { uint8: 64, uint16: 69, uint32: 70 } as const;
export type StreamDtype = keyof typeof TYPED_TAG;

function message(fields: Record<string, unknown>): Buffer {
  return cbor.encode(new Tag(fields, 55799));
}

/** 40([[rows, cols], <typed tag>(56500(["bslz4", elem, bytes]))]) */
export function compressedImage(pixels: Uint8Array | Uint16Array | Uint32Array, shape: [number, number]): CborTag {
  const dtype: StreamDtype = pixels instanceof Uint8Array ? 'uint8' : pixels instanceof Uint16Array ? 'uint16' : 'uint32';
  const bytes = native.bslz4Encode(pixels, pixels.BYTES_PER_ELEMENT);
  return new Tag([shape, new Tag(new Tag(['bslz4', pixels.BYTES_PER_ELEMENT, bytes], 56500), TYPED_TAG[dtype])], 40);
}

/** 40([[rows, cols], <typed tag>(bytes)]): an image sent without compression. */
export function uncompressedImage(pixels: Uint8Array | Uint16Array | Uint32Array, shape: [number, number]): CborTag {
  const dtype: StreamDtype = pixels instanceof Uint8Array ? 'uint8' : pixels instanceof Uint16Array ? 'uint16' : 'uint32';
  return new Tag([shape, new Tag(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength), TYPED_TAG[dtype])], 40);
}

export interface StartFields {
  series_id: number;
  series_unique_id: string;
  shape: [number, number];
  dtype: StreamDtype;
  beam_center: [number, number];
  pixel_size: number;
  distance: number;
  wavelength_A: number;
  number_of_images: number;
  channels: string[];
  saturation_value?: number;
  pixel_mask?: Uint32Array;
}

export function startMessage(s: StartFields): Buffer {
  return message({
    type: 'start',
    series_id: s.series_id,
    series_unique_id: s.series_unique_id,
    beam_center_x: s.beam_center[0],
    beam_center_y: s.beam_center[1],
    detector_translation: [0, 0, s.distance],
    incident_wavelength: s.wavelength_A,
    incident_energy: 12398.42 / s.wavelength_A,
    pixel_size_x: s.pixel_size,
    pixel_size_y: s.pixel_size,
    image_size_x: s.shape[1],
    image_size_y: s.shape[0],
    image_dtype: s.dtype,
    channels: s.channels,
    number_of_images: s.number_of_images,
    ...(s.saturation_value !== undefined ? { saturation_value: s.saturation_value } : {}),
    ...(s.pixel_mask ? { pixel_mask: Object.fromEntries(s.channels.map((c) => [c, compressedImage(s.pixel_mask!, s.shape)])) } : {}),
    user_data: { generator: 'beamedge' },
  });
}

export function imageMessage(seriesId: number, uniqueId: string, imageId: number, channels: Record<string, CborTag>): Buffer {
  return message({ type: 'image', series_id: seriesId, series_unique_id: uniqueId, image_id: imageId, real_time: [1, 1000], data: channels });
}

export function endMessage(seriesId: number, uniqueId: string): Buffer {
  return message({ type: 'end', series_id: seriesId, series_unique_id: uniqueId });
}
