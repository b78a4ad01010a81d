// The detector side of DECTRIS stream v1 (JSON multipart over ZeroMQ PUSH),
// for `replay --zmq-v1` and `simulate --zmq-v1`.
import { decodeImage, elemSize, type EncodedImage } from '../decode/stream2';
import { native } from '../native';

const j = (o: object): Buffer => Buffer.from(JSON.stringify(o));

export interface V1Config {
  shape: [number, number];
  beam_center: [number, number];
  pixel_size: number;
  distance: number;
  wavelength_A: number;
  nimages: number;
  count_cutoff?: number;
}

/** dheader-1.0 with header_detail "all": detector configuration and the pixel mask. */
export function headerParts(series: number, c: V1Config, pixelMask?: Uint32Array): Buffer[] {
  const parts: Buffer[] = [
    j({ htype: 'dheader-1.0', series, header_detail: 'all' }),
    j({
      beam_center_x: c.beam_center[0],
      beam_center_y: c.beam_center[1],
      detector_distance: c.distance,
      wavelength: c.wavelength_A,
      x_pixel_size: c.pixel_size,
      y_pixel_size: c.pixel_size,
      x_pixels_in_detector: c.shape[1],
      y_pixels_in_detector: c.shape[0],
      nimages: c.nimages,
      ...(c.count_cutoff !== undefined ? { countrate_correction_count_cutoff: c.count_cutoff } : {}),
    }),
  ];
  if (pixelMask) parts.push(j({ htype: 'dpixelmask-1.0', shape: [c.shape[1], c.shape[0]], type: 'uint32' }), Buffer.from(pixelMask.buffer, pixelMask.byteOffset, pixelMask.byteLength));
  return parts;
}

/** A v2 image re-encoded the v1 way: bitshuffle-LZ4 as is, framed LZ4 as one bare block. */
export function v1Image(img: EncodedImage): { encoding: string; bytes: Buffer } {
  const bits = 8 * elemSize(img.dtype);
  if (img.encoding === 'bslz4') return { encoding: `bs${bits}-lz4<`, bytes: Buffer.from(img.bytes) };
  if (img.encoding === 'raw') return { encoding: '<', bytes: Buffer.from(img.bytes) };
  const px = decodeImage(img);
  return { encoding: 'lz4<', bytes: native.lz4BlockEncode(px) };
}

export function imageParts(series: number, frame: number, img: EncodedImage): Buffer[] {
  const { encoding, bytes } = v1Image(img);
  return [
    j({ htype: 'dimage-1.0', series, frame, hash: '' }),
    j({ htype: 'dimage_d-1.0', shape: [img.shape[1], img.shape[0]], type: img.dtype, encoding, size: bytes.length }),
    bytes,
    j({ htype: 'dconfig-1.0', start_time: frame * 1e6, stop_time: frame * 1e6 + 5e5, real_time: 5e5 }),
  ];
}

export function endParts(series: number): Buffer[] {
  return [j({ htype: 'dseries_end-1.0', series })];
}
