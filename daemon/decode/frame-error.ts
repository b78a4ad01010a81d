// A frame that cannot be used. Carries where it came from so the message says
// what, where and which frame without the caller re-assembling it.
export class FrameError extends Error {
  constructor(
    message: string,
    readonly source?: string,
  ) {
    super(source ? `${source}: ${message}` : message);
    this.name = 'FrameError';
  }
}
