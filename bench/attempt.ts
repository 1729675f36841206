/** A case that failed: reported in its place, not fatal, so the other cases of the run still mean something. */
export type Failed = { error: string };

export async function attempt<T>(work: () => Promise<T>): Promise<T | Failed> {
  try {
    return await work();
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
