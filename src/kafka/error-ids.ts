/**
 * Kafka error ids along an error, its causes and the errors it groups: @platformatic/kafka's
 * `apiId` (its ResponseError holds one error per refused partition) and kafkajs's `type`.
 */
export function errorIds(error: unknown): string[] {
  const ids: string[] = [];
  const queue: unknown[] = [error];
  for (let seen = 0; queue.length > 0 && seen < 50; seen += 1) {
    const next = queue.shift() as {
      apiId?: unknown;
      type?: unknown;
      errors?: unknown;
      cause?: unknown;
    } | null;
    if (next === null || next === undefined || typeof next !== 'object') continue;
    if (typeof next.apiId === 'string') ids.push(next.apiId);
    if (typeof next.type === 'string') ids.push(next.type);
    if (Array.isArray(next.errors)) queue.push(...(next.errors as unknown[]));
    if (next.cause !== undefined) queue.push(next.cause);
  }
  return ids;
}

export function hasErrorId(error: unknown, id: string): boolean {
  return errorIds(error).includes(id);
}
