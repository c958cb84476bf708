/**
 * Checks that src/ has layers: no import circle among its files, and none
 * among its folders (src/a -> src/b when a file in src/a imports a file in
 * src/b). A circle between folders means neither can be understood, tested
 * or replaced without the other, even when no two files import each other.
 * Dynamic and type-only imports count: they are still dependencies.
 *
 * Usage: deno run -A scripts/check-imports.ts
 *
 * Prints the folder graph (what each folder imports), then any circle, and
 * exits 1 when there is one. The graph comes from `deno info --json` of
 * main.ts, src/mod.ts and every other src/ file neither of them reaches.
 *
 * @module
 */

/** A module graph: each file (path relative to the repository) and the
 * files it imports. */
export type ImportGraph = Map<string, Set<string>>;

/** The part of `deno info --json` output read here. */
export interface DenoInfo {
  /** Every module reached from the root. */
  modules: {
    specifier: string;
    dependencies?: {
      code?: { specifier: string };
      type?: { specifier: string };
    }[];
  }[];
}

/** What {@link checkImports} found. */
export interface ImportCheck {
  /** The folder graph: each layer and the layers it imports. */
  folders: ImportGraph;
  /** Circles among files, each as a closed path (first file repeated). */
  fileCycles: string[][];
  /** Circles among folders, each as a closed path. */
  folderCycles: string[][];
}

/** Whether a repository-relative path is checked: main.ts and src/. */
function checked(path: string): boolean {
  return path === "main.ts" || path.startsWith("src/");
}

/**
 * The file graph of `deno info --json` outputs, restricted to main.ts and
 * src/, with paths relative to `root` (a file URL ending in "/"). Both
 * the code and the type side of each import count.
 */
export function graphFromDenoInfo(
  infos: DenoInfo[],
  root: string,
): ImportGraph {
  const rel = (spec: string) =>
    spec.startsWith(root) ? spec.slice(root.length) : null;
  const graph: ImportGraph = new Map();
  for (const info of infos) {
    for (const m of info.modules) {
      const from = rel(m.specifier);
      if (from === null || !checked(from)) continue;
      const deps = graph.get(from) ?? new Set<string>();
      graph.set(from, deps);
      for (const d of m.dependencies ?? []) {
        for (const side of [d.code, d.type]) {
          const to = side && rel(side.specifier);
          if (to && checked(to) && to !== from) deps.add(to);
        }
      }
    }
  }
  return graph;
}

/**
 * The layer a file belongs to: its first folder under src/ ("src/scan"),
 * or the file itself when it sits directly in src/ (src/errors.ts is the
 * bottom layer, src/mod.ts the top one) or is main.ts.
 */
export function layerOf(path: string): string {
  const parts = path.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : path;
}

/** The folder graph of a file graph (see {@link layerOf}); no self-edges. */
export function folderGraph(files: ImportGraph): ImportGraph {
  const out: ImportGraph = new Map();
  for (const [from, deps] of files) {
    const a = layerOf(from);
    const set = out.get(a) ?? new Set<string>();
    out.set(a, set);
    for (const to of deps) {
      const b = layerOf(to);
      if (b !== a) set.add(b);
    }
  }
  return out;
}

/**
 * The circles of a graph: one per strongly connected component with more
 * than one node (Tarjan), each shown as a shortest closed path through the
 * component's first node, so a reader sees an actual loop of imports.
 */
export function findCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const nodes = [...graph.keys()].sort();
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) components.push(comp.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return components
    .map((comp) => shortestLoop(graph, comp[0], new Set(comp)))
    .sort((a, b) => a[0].localeCompare(b[0]));
}

/** A shortest path from start back to start within `within` (BFS). */
function shortestLoop(
  graph: ImportGraph,
  start: string,
  within: Set<string>,
): string[] {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!within.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = parent.get(u)!) path.push(u);
        return [start, ...path.slice(1).reverse(), start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start]; // unreachable for a strongly connected component
}

/** Checks a file graph for circles among its files and its folders. */
export function checkImports(files: ImportGraph): ImportCheck {
  const folders = folderGraph(files);
  return {
    folders,
    fileCycles: findCycles(files),
    folderCycles: findCycles(folders),
  };
}

/**
 * Runs `deno info --json` on main.ts, src/mod.ts and every src/ file
 * those do not reach, and returns the graph of main.ts and src/.
 *
 * @param rootDir the repository's directory (default: this script's parent)
 */
export async function readImportGraph(
  rootDir = new URL("..", import.meta.url),
): Promise<ImportGraph> {
  const root = rootDir.href.endsWith("/") ? rootDir.href : `${rootDir.href}/`;
  const info = async (file: string): Promise<DenoInfo> => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", file],
      cwd: new URL(root),
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error(`deno info --json ${file} failed`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  };
  const infos = [await info("main.ts"), await info("src/mod.ts")];
  let graph = graphFromDenoInfo(infos, root);
  // Files no entry point reaches still belong to a layer.
  for (const file of listTs(new URL("src/", root), "src/")) {
    if (graph.has(file)) continue;
    infos.push(await info(file));
    graph = graphFromDenoInfo(infos, root);
  }
  return graph;
}

/** Every .ts file under dir, relative to the repository, sorted. */
function listTs(dir: URL, prefix: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) {
      out.push(...listTs(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`));
    } else if (e.isFile && e.name.endsWith(".ts")) {
      out.push(`${prefix}${e.name}`);
    }
  }
  return out.sort();
}

/** The folder graph as text: one line per layer, with what it imports. */
export function formatFolders(folders: ImportGraph): string {
  return [...folders.keys()].sort().map((f) => {
    const deps = [...folders.get(f)!].sort();
    return `${f} -> ${deps.length ? deps.join(", ") : "(nothing)"}`;
  }).join("\n");
}

if (import.meta.main) {
  const r = checkImports(await readImportGraph());
  console.log("Folder graph (each layer and the layers it imports):");
  console.log(formatFolders(r.folders));
  for (const c of r.folderCycles) {
    console.log(`circle among folders: ${c.join(" -> ")}`);
  }
  for (const c of r.fileCycles) {
    console.log(`circle among files: ${c.join(" -> ")}`);
  }
  const n = r.fileCycles.length + r.folderCycles.length;
  if (n > 0) {
    console.error(`check-imports: ${n} import circle(s)`);
    Deno.exit(1);
  }
  console.log("check-imports: no import circles");
}
