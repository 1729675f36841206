import type { Message, ProducerBatch } from 'kafkajs';
import type { BatchProducer } from '../../src/kafka/producer-thread.js';

/**
 * Stands in for the producer under an OrderedPublisher: records every request and acknowledges it
 * at once, or, while `held`, only when the test calls ack(), so a test can look at what happens
 * between a send and its acknowledgement.
 */
export class RecordingProducer implements BatchProducer {
  readonly requests: ProducerBatch[] = [];
  held = false;
  readonly #pending: (() => void)[] = [];
  #arrived: (() => void) | undefined;

  connect(): Promise<void> {
    return Promise.resolve();
  }

  disconnect(): Promise<void> {
    return Promise.resolve();
  }

  sendBatch(batch: ProducerBatch): Promise<void> {
    this.requests.push(batch);
    this.#arrived?.();
    if (!this.held) return Promise.resolve();
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  /** Waits until `count` requests were made in all. */
  async requested(count: number): Promise<void> {
    while (this.requests.length < count) await new Promise<void>((resolve) => (this.#arrived = resolve));
  }

  /** Acknowledges the oldest held request. */
  ack(): void {
    const resolve = this.#pending.shift();
    if (resolve === undefined) throw new Error('RecordingProducer.ack: no request is held');
    resolve();
  }

  /** Every record sent to `topic`, in the order sent. */
  messagesTo(topic: string): Message[] {
    return this.requests.flatMap((batch) =>
      (batch.topicMessages ?? []).filter((t) => t.topic === topic).flatMap((t) => t.messages),
    );
  }
}
