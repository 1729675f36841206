import type { IHeaders, Message } from 'kafkajs';
import type { RejectReason } from './requests.js';

/** Header names on dead-letter records; documented in README.md. */
export const DLQ_HEADERS = {
  reason: 'streamscore.reason',
  message: 'streamscore.message',
  stage: 'streamscore.stage',
  sourceTopic: 'streamscore.source.topic',
  sourcePartition: 'streamscore.source.partition',
  sourceOffset: 'streamscore.source.offset',
  failedAt: 'streamscore.failed.at',
} as const;

export interface DeadLetterSource {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders | undefined;
}

/**
 * The dead-letter record keeps the original key and value bytes untouched and the original
 * headers, and adds ours, so the event can be inspected, fixed and replayed as it was.
 */
export function deadLetterMessage(
  source: DeadLetterSource,
  reason: RejectReason,
  stage: string,
  message: string,
  now = Date.now(),
): Message {
  return {
    key: source.key,
    value: source.value,
    headers: {
      ...source.headers,
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.message]: message.length > 1_000 ? `${message.slice(0, 1_000)}...` : message,
      [DLQ_HEADERS.stage]: stage,
      [DLQ_HEADERS.sourceTopic]: source.topic,
      [DLQ_HEADERS.sourcePartition]: String(source.partition),
      [DLQ_HEADERS.sourceOffset]: source.offset,
      [DLQ_HEADERS.failedAt]: String(now),
    },
  };
}
