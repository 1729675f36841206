/**
 * Position of a key in [0, 1), from FNV-1a (32-bit) over its UTF-8 bytes. A key goes to the
 * canary when its position is below the share, so a key keeps its version while the share stays,
 * and raising the share only moves keys toward the canary. Stable across processes and releases:
 * changing this function would reshuffle every user's canary population.
 */
export function keyPosition(key: Buffer | string): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i += 1) {
    hash ^= bytes[i]!;
    hash = Math.imul(hash, 0x01000193);
  }
  // FNV's low bits mix poorly for short keys that differ in the last byte; a final avalanche
  // (from MurmurHash3's fmix32) spreads them before the value is used as a fraction.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 4_294_967_296;
}
