import { Admin } from '@platformatic/kafka';
import type { KafkaSettings } from './client.js';
import { hasErrorId } from './error-ids.js';
import { platformaticOptions } from './platformatic-options.js';

/** A committed offset as backfill reads it: undefined where the partition has none. */
export interface StableCommit {
  offset: bigint | undefined;
  metadata: string | null;
}

const MAX_WAIT_MS = 1_000;

/**
 * Reads a group's committed offsets of one topic once no transaction is still committing to them
 * (OffsetFetch with require_stable, asked again while the broker answers UNSTABLE_OFFSET_COMMIT).
 * Exactly-once readers start from these: an offset read while a transaction commits it could be
 * the one before, and what that transaction wrote would be written again.
 */
export class StableOffsetReader {
  readonly #admin: Admin;

  constructor(settings: KafkaSettings) {
    this.#admin = new Admin(platformaticOptions(settings, { patient: true }));
  }

  async read(groupId: string, topic: string): Promise<Map<number, StableCommit>> {
    for (let wait = 50; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
      try {
        const groups = await this.#admin.listConsumerGroupOffsets({
          groups: [{ groupId, topics: null }],
          requireStable: true,
        });
        const result = new Map<number, StableCommit>();
        for (const { name, partitions } of groups[0]?.topics ?? []) {
          if (name !== topic) continue;
          for (const { partitionIndex, committedOffset, metadata } of partitions) {
            result.set(partitionIndex, {
              offset: committedOffset >= 0n ? committedOffset : undefined,
              metadata: metadata ?? null,
            });
          }
        }
        return result;
      } catch (error) {
        if (!hasErrorId(error, 'UNSTABLE_OFFSET_COMMIT')) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  async close(): Promise<void> {
    await this.#admin.close();
  }
}
