/** Avro and Confluent framing written by hand, so tests can build values no encoder would write. */

/** Avro's zig-zag varint of any integer. */
export function varint(value: bigint): number[] {
  let zigzag = value >= 0n ? value << 1n : (-value << 1n) - 1n;
  const bytes: number[] = [];
  while (zigzag >= 0x80n) {
    bytes.push(Number(zigzag & 0x7fn) | 0x80);
    zigzag >>= 7n;
  }
  bytes.push(Number(zigzag));
  return bytes;
}

/** A value in the Confluent framing: magic byte 0, the schema id (big-endian), the Avro body. */
export function framed(id: number, body: readonly number[] | Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, Buffer.from(body)]);
}

export function avroString(text: string): number[] {
  return [...varint(BigInt(Buffer.byteLength(text))), ...Buffer.from(text)];
}

export function avroDouble(value: number): number[] {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return [...bytes];
}
