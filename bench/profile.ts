/**
 * Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and sums self time per function and per
 * package, so the bench can say where serve's main thread spent a saturated drain.
 *
 * Format: `nodes` is the call tree (each node a callFrame), `samples[i]` is the node that was on top
 * of the stack at sample i and `timeDeltas[i]` the microseconds since the previous sample. As
 * Chrome DevTools does, the interval after a sample is charged to that sample's node.
 */
import { readFile } from 'node:fs/promises';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled time inside the window: from the first to the last sample in serve's pipeline code. */
  total_ms: number;
  /** The whole profile, start-up and shutdown included. */
  profile_ms: number;
  functions: SelfTime[];
  packages: SelfTime[];
}

export async function summarizeProfile(file: string, top = 20): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const inPipeline = pipelineNodes(profile.nodes);
  const { samples, timeDeltas } = profile;
  // The window: start-up (module loading, model load, group join) and shutdown are not serve's
  // steady work, so only samples between the first and the last one in pipeline code count.
  const first = samples.findIndex((id) => inPipeline.has(id));
  const last = samples.findLastIndex((id) => inPipeline.has(id));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  let whole = 0;
  for (let i = 0; i < samples.length; i += 1) {
    const micros = timeDeltas[i + 1] ?? 0;
    whole += micros;
    const frame = frames.get(samples[i]!);
    if (frame === undefined || i < first || i > last) continue;
    total += micros;
    const name = functionKey(frame);
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
    const pkg = packageOf(frame);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
  }
  const rank = (map: Map<string, number>, limit: number): SelfTime[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, micros]) => ({
        name,
        ms: Math.round(micros / 1_000),
        share: total > 0 ? Math.round((micros / total) * 1_000) / 10 : 0,
      }));
  return {
    file,
    total_ms: Math.round(total / 1_000),
    profile_ms: Math.round(whole / 1_000),
    functions: rank(byFunction, top),
    packages: rank(byPackage, 15),
  };
}

/** Ids of nodes running inside streamscore's pipeline code (dist/src/pipeline/), shutdown excluded. */
function pipelineNodes(nodes: readonly ProfileNode[]): Set<number> {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const inside = new Set<number>();
  const visit = (id: number, under: boolean): void => {
    const node = byId.get(id);
    if (node === undefined) return;
    const { url, functionName } = node.callFrame;
    if (functionName === 'stop' && url.includes('/dist/src/pipeline/')) return;
    const here = under || url.includes('/dist/src/pipeline/');
    if (here) inside.add(id);
    for (const child of node.children ?? []) visit(child, here);
  };
  // The first node is the root; the tree is shallow enough (a few hundred frames) for recursion.
  if (nodes[0] !== undefined) visit(nodes[0].id, false);
  return inside;
}

/** `name url:line`, with the url shortened to its part after node_modules/ or the repository. */
function functionKey(frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return name;
  // V8 line numbers are 0-based; editors count from 1.
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) return url.slice(modules + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

/**
 * Where a frame's code lives: an npm package, streamscore itself, Node.js internals, or one of
 * V8's pseudo-frames ((garbage collector), (idle), (program)).
 */
function packageOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const parts = url.slice(modules + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith('node:')) return 'node (internals)';
  if (url.includes('/dist/src/')) return 'streamscore';
  return url;
}
