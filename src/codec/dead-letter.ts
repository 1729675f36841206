import type { OutRecord, RecordHeaders } from '../kafka/records.js';
import type { RejectReason } from './requests.js';

/** Header names on dead-letter records; documented in docs/reference.md. */
export const DLQ_HEADERS = {
  reason: 'streamscore.reason',
  message: 'streamscore.message',
  stage: 'streamscore.stage',
  sourceTopic: 'streamscore.source.topic',
  sourcePartition: 'streamscore.source.partition',
  sourceOffset: 'streamscore.source.offset',
  failedAt: 'streamscore.failed.at',
  /** Set (to the original byte count) when the value was left out to fit the topic. */
  valueOmitted: 'streamscore.value.omitted',
  /** Set (to the original byte count) when the key and the original headers were left out too. */
  keyOmitted: 'streamscore.key.omitted',
} as const;

export type DeadLetterStage = 'decode' | 'validate' | 'infer' | 'publish';

export interface DeadLetterSource {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeaders | undefined;
}

/** The longest `streamscore.message` written; longer messages are cut. */
const MAX_MESSAGE_CHARS = 1_000;

/**
 * The dead-letter record keeps the original key and value bytes untouched and the original
 * headers, and adds ours, so the event can be inspected, fixed and replayed as it was. A copy that
 * would not fit the dead-letter topic (`maxBytes`, measured by `size`) is written without its
 * value, and if need be without its key and original headers; the source topic, partition and
 * offset still say where the original can be read.
 */
export function deadLetterMessage(
  source: DeadLetterSource,
  reason: RejectReason,
  stage: DeadLetterStage,
  message: string,
  limit: { maxBytes: number; size: (message: OutRecord) => number },
  now = Date.now(),
): { message: OutRecord; omitted: boolean } {
  const ours: Record<string, string> = {
    [DLQ_HEADERS.reason]: reason,
    [DLQ_HEADERS.message]:
      message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}...` : message,
    [DLQ_HEADERS.stage]: stage,
    [DLQ_HEADERS.sourceTopic]: source.topic,
    [DLQ_HEADERS.sourcePartition]: String(source.partition),
    [DLQ_HEADERS.sourceOffset]: source.offset,
    [DLQ_HEADERS.failedAt]: String(now),
  };
  const whole: OutRecord = { key: source.key, value: source.value, headers: { ...source.headers, ...ours } };
  if (limit.size(whole) <= limit.maxBytes) return { message: whole, omitted: false };
  const valueBytes = String(source.value?.length ?? 0);
  const withoutValue: OutRecord = {
    key: source.key,
    value: null,
    headers: { ...source.headers, ...ours, [DLQ_HEADERS.valueOmitted]: valueBytes },
  };
  if (limit.size(withoutValue) <= limit.maxBytes) return { message: withoutValue, omitted: true };
  const keyBytes = String(source.key?.length ?? 0);
  return {
    message: {
      key: null,
      value: null,
      headers: { ...ours, [DLQ_HEADERS.valueOmitted]: valueBytes, [DLQ_HEADERS.keyOmitted]: keyBytes },
    },
    omitted: true,
  };
}
