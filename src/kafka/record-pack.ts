import type { OutRecord, RecordHeaders, TopicRecords } from './records.js';

/**
 * Produce requests as one contiguous buffer, so they cross to the producer thread as a single
 * transferred ArrayBuffer. Posting the records themselves would clone each Buffer's whole backing
 * store: the 8 KiB allocation pool for small buffers, or a consumed record's entire fetch response.
 *
 * Layout, big-endian: u32 topic count; per topic: string name, u32 record count; per record:
 * bytes key, bytes value, u32 header count, then per header value: string name, bytes value.
 * A string is u32 length + UTF-8; bytes are i32 length (-1 for null) + the bytes.
 * Header values that are arrays become one header each (Kafka allows repeated names).
 */
export function packTopicMessages(topicMessages: readonly TopicRecords[]): ArrayBuffer {
  const parts: (Buffer | string | null | undefined)[] = [];
  let size = 4;
  const addString = (text: string) => {
    parts.push(text);
    size += 4 + Buffer.byteLength(text);
  };
  const addBytes = (data: Buffer | string | null | undefined) => {
    parts.push(data ?? null);
    size += 4 + byteLength(data);
  };
  const counts: number[] = [];
  for (const { topic, messages } of topicMessages) {
    addString(topic);
    counts.push(messages.length);
    size += 4;
    for (const message of messages) {
      if (message.partition !== undefined || message.timestamp !== undefined) {
        throw new TypeError('packTopicMessages: records with a set partition or timestamp are not supported');
      }
      addBytes(message.key);
      addBytes(message.value);
      const headers = flattenHeaders(message.headers);
      counts.push(headers.length);
      size += 4;
      for (const [name, value] of headers) {
        addString(name);
        addBytes(value);
      }
    }
  }
  const out = Buffer.allocUnsafeSlow(size);
  let at = out.writeUInt32BE(topicMessages.length, 0);
  let part = 0;
  let count = 0;
  const writeString = () => {
    const text = parts[part++] as string;
    const length = out.write(text, at + 4);
    out.writeUInt32BE(length, at);
    at += 4 + length;
  };
  const writeBytes = () => {
    const data = parts[part++];
    if (data === null || data === undefined) {
      at = out.writeInt32BE(-1, at);
      return;
    }
    const length = typeof data === 'string' ? out.write(data, at + 4) : data.copy(out, at + 4);
    out.writeInt32BE(length, at);
    at += 4 + length;
  };
  for (const { messages } of topicMessages) {
    writeString();
    at = out.writeUInt32BE(counts[count++]!, at);
    for (let i = 0; i < messages.length; i += 1) {
      writeBytes();
      writeBytes();
      const headers = counts[count++]!;
      at = out.writeUInt32BE(headers, at);
      for (let h = 0; h < headers; h += 1) {
        writeString();
        writeBytes();
      }
    }
  }
  return out.buffer;
}

/** The records of packTopicMessages; keys, values and header values are views of `packed`. */
export function unpackTopicMessages(packed: ArrayBuffer): TopicRecords[] {
  const data = Buffer.from(packed);
  let at = 0;
  const u32 = () => {
    const value = data.readUInt32BE(at);
    at += 4;
    return value;
  };
  const string = () => {
    const length = u32();
    const text = data.toString('utf8', at, at + length);
    at += length;
    return text;
  };
  const bytes = (): Buffer | null => {
    const length = data.readInt32BE(at);
    at += 4;
    if (length < 0) return null;
    const view = data.subarray(at, at + length);
    at += length;
    return view;
  };
  const topics: TopicRecords[] = [];
  for (let t = u32(); t > 0; t -= 1) {
    const topic = string();
    const messages: OutRecord[] = [];
    for (let m = u32(); m > 0; m -= 1) {
      const key = bytes();
      const value = bytes();
      const headerCount = u32();
      const message: OutRecord = { key, value };
      if (headerCount > 0) {
        const headers: RecordHeaders = {};
        for (let h = 0; h < headerCount; h += 1) {
          const name = string();
          const headerValue = bytes() ?? undefined;
          const existing = headers[name];
          if (existing === undefined) headers[name] = headerValue;
          else
            headers[name] = [...(Array.isArray(existing) ? existing : [existing]), headerValue] as Buffer[];
        }
        message.headers = headers;
      }
      messages.push(message);
    }
    topics.push({ topic, messages });
  }
  if (at !== data.length) throw new RangeError(`unpackTopicMessages: ${data.length - at} bytes left over`);
  return topics;
}

function flattenHeaders(headers: RecordHeaders | undefined): [string, Buffer | string | null | undefined][] {
  if (headers === undefined) return [];
  const flat: [string, Buffer | string | null | undefined][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const each of value) flat.push([name, each]);
    else flat.push([name, value]);
  }
  return flat;
}

/** Bytes a key, value or header takes on the wire; 0 for none. */
export function byteLength(data: Buffer | string | null | undefined): number {
  if (data === null || data === undefined) return 0;
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
}
