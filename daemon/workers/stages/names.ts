// The stages a configuration can name, in the order frames pass through them.
// Decoding always runs first and is not named.
export const STAGE_NAMES = ['calibrate', 'spots', 'veto', 'integrate', 'correlate'] as const;
export type StageName = (typeof STAGE_NAMES)[number];
