/**
 * scripts/check-imports.ts: src/ has no import circle among its files or
 * its folders (the real graph, from `deno info --json`), and the checker
 * does find circles in graphs that have them.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  checkImports,
  type DenoInfo,
  findCycles,
  formatFolders,
  graphFromDenoInfo,
  type ImportGraph,
  layerOf,
  readImportGraph,
} from "../../scripts/check-imports.ts";

/** A graph from "a -> b, c" lines. */
function graph(lines: string[]): ImportGraph {
  const g: ImportGraph = new Map();
  for (const line of lines) {
    const [from, to = ""] = line.split("->").map((s) => s.trim());
    const deps = g.get(from) ?? new Set<string>();
    g.set(from, deps);
    for (const t of to.split(",").map((s) => s.trim()).filter(Boolean)) {
      deps.add(t);
      if (!g.has(t)) g.set(t, new Set());
    }
  }
  return g;
}

Deno.test("src/ has no import circle among its files or its folders", async () => {
  const files = await readImportGraph();
  // The graph is the real one: both entry points and the engines are in it.
  for (
    const f of [
      "main.ts",
      "src/mod.ts",
      "src/compose/engines.ts",
      "src/kmod/marker.ts",
      "src/ptrace/marker.ts",
    ]
  ) ok(files.has(f), `${f} is in the graph`);
  const r = checkImports(files);
  assertEquals(r.fileCycles, [], "circles among files");
  assertEquals(
    r.folderCycles,
    [],
    `circles among folders; the folder graph:\n${formatFolders(r.folders)}`,
  );
});

const CASES: {
  what: string;
  files: string[];
  fileCycles: string[][];
  folderCycles: string[][];
}[] = [
  {
    what: "layers: nothing imports upward",
    files: [
      "main.ts -> src/cli/main.ts",
      "src/cli/main.ts -> src/merge/merge.ts, src/errors.ts",
      "src/merge/merge.ts -> src/compose/engines.ts, src/engine/marker.ts",
      "src/compose/engines.ts -> src/kmod/marker.ts, src/ptrace/marker.ts",
      "src/kmod/marker.ts -> src/engine/marker.ts, src/errors.ts",
      "src/ptrace/marker.ts -> src/engine/marker.ts, src/errors.ts",
      "src/mod.ts -> src/merge/merge.ts, src/errors.ts",
    ],
    fileCycles: [],
    folderCycles: [],
  },
  {
    what: "two files importing each other",
    files: [
      "src/merge/marker.ts -> src/ptrace/marker.ts",
      "src/ptrace/marker.ts -> src/merge/marker.ts",
    ],
    fileCycles: [[
      "src/merge/marker.ts",
      "src/ptrace/marker.ts",
      "src/merge/marker.ts",
    ]],
    folderCycles: [["src/merge", "src/ptrace", "src/merge"]],
  },
  {
    what: "a folder circle without a file circle",
    files: [
      "src/scan/resolve.ts -> src/kmod/backend.ts",
      "src/kmod/backend.ts -> src/scan/backend.ts",
    ],
    fileCycles: [],
    folderCycles: [["src/kmod", "src/scan", "src/kmod"]],
  },
  {
    what: "a circle of three files in one folder",
    files: [
      "src/a/x.ts -> src/a/y.ts",
      "src/a/y.ts -> src/a/z.ts",
      "src/a/z.ts -> src/a/x.ts, src/b/w.ts",
    ],
    fileCycles: [["src/a/x.ts", "src/a/y.ts", "src/a/z.ts", "src/a/x.ts"]],
    folderCycles: [],
  },
  {
    what: "a circle of three folders, and a separate one of two",
    files: [
      "src/a/x.ts -> src/b/x.ts",
      "src/b/x.ts -> src/c/x.ts",
      "src/c/y.ts -> src/a/y.ts",
      "src/d/x.ts -> src/e/x.ts",
      "src/e/y.ts -> src/d/y.ts",
    ],
    fileCycles: [],
    folderCycles: [
      ["src/a", "src/b", "src/c", "src/a"],
      ["src/d", "src/e", "src/d"],
    ],
  },
];

for (const c of CASES) {
  Deno.test(`checkImports: ${c.what}`, () => {
    const r = checkImports(graph(c.files));
    assertEquals(r.fileCycles, c.fileCycles);
    assertEquals(r.folderCycles, c.folderCycles);
  });
}

Deno.test("findCycles gives a shortest loop through the circle", () => {
  // a -> b -> c -> a, and the shortcut b -> a.
  const g = graph(["a -> b", "b -> c, a", "c -> a"]);
  assertEquals(findCycles(g), [["a", "b", "a"]]);
});

Deno.test("layerOf: a folder of src/, or the file itself at the top", () => {
  assertEquals(layerOf("src/scan/scan.ts"), "src/scan");
  assertEquals(layerOf("src/errors.ts"), "src/errors.ts");
  assertEquals(layerOf("main.ts"), "main.ts");
});

Deno.test("graphFromDenoInfo counts dynamic and type-only imports", () => {
  const root = "file:///repo/";
  const info: DenoInfo = {
    modules: [
      {
        specifier: `${root}src/merge/marker.ts`,
        dependencies: [
          // import("../ptrace/marker.ts")
          { code: { specifier: `${root}src/ptrace/marker.ts` } },
          // import type { X } from "../kmod/client.ts"
          { type: { specifier: `${root}src/kmod/client.ts` } },
          // outside main.ts and src/: not checked
          { code: { specifier: `${root}tests/helpers/assert.ts` } },
          { code: { specifier: "jsr:@std/assert" } },
        ],
      },
      { specifier: `${root}src/ptrace/marker.ts`, dependencies: [] },
      { specifier: `${root}deno.json` },
    ],
  };
  const g = graphFromDenoInfo([info], root);
  assertEquals(
    [...g].map(([f, d]) => [f, [...d].sort()]),
    [
      ["src/merge/marker.ts", ["src/kmod/client.ts", "src/ptrace/marker.ts"]],
      ["src/ptrace/marker.ts", []],
    ],
  );
});
