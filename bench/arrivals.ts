/**
 * Records when each output record arrives at a consumer of the predictions topic. This is the
 * clock every throughput and latency number of the bench stops on: the moment a downstream
 * application could have read the prediction. Values are kept raw and decoded only after the
 * measurement, so the recorder costs the machine as little as possible while it runs.
 */
import type { Consumer, Kafka } from 'kafkajs';
import { sleep } from './child.js';
import { uniqueName } from './kafka.js';

export interface Arrival {
  /** Epoch ms at which the fetch holding the record was handed to us. */
  at: number;
  value: Buffer | null;
}

export class ArrivalRecorder {
  readonly arrivals: Arrival[] = [];
  readonly group = uniqueName('arrivals');
  readonly #consumer: Consumer;
  #joined = false;
  #running: Promise<void> | undefined;

  constructor(kafka: Kafka) {
    // A short broker wait: an idle fetch returns soon, and one with data returns at once anyway.
    this.#consumer = kafka.consumer({ groupId: this.group, maxWaitTimeInMs: 100 });
  }

  /** Subscribes from the beginning and resolves once the group is joined, so no arrival is missed. */
  async start(topic: string, timeoutMs = 30_000): Promise<void> {
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, () => {
      this.#joined = true;
    });
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic, fromBeginning: true });
    this.#running = this.#consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: ({ batch }) => {
        const at = Date.now();
        for (const message of batch.messages) this.arrivals.push({ at, value: message.value });
        return Promise.resolve();
      },
    });
    await this.#running;
    const deadline = performance.now() + timeoutMs;
    while (!this.#joined) {
      if (performance.now() > deadline)
        throw new Error(`arrival consumer did not join within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  get count(): number {
    return this.arrivals.length;
  }

  /**
   * Waits until `count` records arrived, or `until()` says to give up, or timeoutMs passed.
   * Resolves to whether the count was reached.
   */
  async waitFor(count: number, timeoutMs: number, until: () => boolean = () => false): Promise<boolean> {
    // Deadlines run on the monotonic clock; only timestamps that cross processes use Date.now().
    const deadline = performance.now() + timeoutMs;
    while (this.arrivals.length < count) {
      if (performance.now() > deadline || until()) return false;
      await sleep(10);
    }
    return true;
  }

  async stop(): Promise<void> {
    await this.#running;
    await this.#consumer.disconnect();
  }
}
