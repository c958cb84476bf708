/**
 * The node agent's files agree with each other and with the code: no
 * Kubernetes API server runs here to apply deploy/kubernetes/daemonset.yaml,
 * so what a wrong manifest would break at `kubectl apply` or in its first
 * run is checked from the text. The manifest is read by a line-based
 * reader of the subset of YAML it uses (block mappings and sequences), not
 * a general YAML parser.
 */
import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { KSM_DIR } from "../../src/ksm/sysfs.ts";
import { RUN_DIR } from "../../src/ksm/journal.ts";

const root = new URL("../../", import.meta.url);
const read = (p: string) => Deno.readTextFileSync(new URL(p, root));
const manifest = read("deploy/kubernetes/daemonset.yaml");
const agent = read("deploy/mergemem-agent");
const containerfile = read("deploy/Containerfile");
const version = JSON.parse(read("deno.json")).version as string;

/** The YAML documents of the manifest, comments and blank lines dropped. */
function documents(text: string): string[][] {
  const docs: string[][] = [[]];
  for (const line of text.split("\n")) {
    if (line === "---") docs.push([]);
    else if (line.trim() !== "" && !line.trimStart().startsWith("#")) {
      docs.at(-1)!.push(line);
    }
  }
  return docs.filter((d) => d.length > 0);
}

/** The values of `key: value` lines at any depth (list items included). */
function values(doc: string[], key: string): string[] {
  const re = new RegExp(`^\\s*(?:- )?${key}: *(.*)$`);
  return doc.flatMap((l) => {
    const m = re.exec(l);
    return m ? [m[1].replace(/^"(.*)"$/, "$1")] : [];
  });
}

const docs = documents(manifest);
const kinds = docs.map((d) => values(d, "kind")[0]);
const ds = docs[kinds.indexOf("DaemonSet")];

Deno.test("daemonset.yaml: its objects, each with apiVersion and a name", () => {
  assertEquals(kinds, [
    "Namespace",
    "ServiceAccount",
    "ResourceQuota",
    "DaemonSet",
  ]);
  for (const d of docs) {
    assert(values(d, "apiVersion").length > 0, d[0]);
    assertEquals(values(d, "name").length > 0, true);
  }
  // Every namespaced object lives in the Namespace the file creates.
  const ns = values(docs[0], "name")[0];
  for (const d of docs.slice(1)) assertEquals(values(d, "namespace"), [ns]);
});

Deno.test("daemonset.yaml: the selector matches the pod template's labels", () => {
  const text = ds.join("\n");
  const block = (after: string) => {
    const i = ds.findIndex((l) => l.trim() === after);
    assert(i >= 0, `no ${after} in the DaemonSet`);
    const indent = ds[i + 1].length - ds[i + 1].trimStart().length;
    const out: string[] = [];
    for (const l of ds.slice(i + 1)) {
      if (l.length - l.trimStart().length < indent) break;
      out.push(l.trim());
    }
    return out;
  };
  const selector = block("matchLabels:");
  const podLabels = ds.slice(ds.findIndex((l) => l.trim() === "template:"));
  const labels = podLabels.slice(
    podLabels.findIndex((l) => l.trim() === "labels:"),
  );
  for (const l of selector) assert(labels.some((x) => x.trim() === l), l);
  assert(/hostPID: true/.test(text));
});

Deno.test("daemonset.yaml: mounts what mergemem uses, each a declared volume", () => {
  const mounts = values(ds, "mountPath");
  for (const dir of [KSM_DIR, RUN_DIR, "/var/log/pods", "/tmp"]) {
    assert(mounts.includes(dir), `${dir} is not mounted`);
  }
  const i = ds.findIndex((l) => l.trim() === "volumes:");
  const declared = values(ds.slice(i), "name");
  const mountNames = ds.slice(0, i).flatMap((l, k) =>
    /^\s*- name: /.test(l) && /mountPath:/.test(ds[k + 1] ?? "")
      ? [l.trim().slice("- name: ".length)]
      : []
  );
  assertEquals(mountNames.length, mounts.length);
  for (const n of mountNames) assert(declared.includes(n), `volume ${n}`);
  // The KSM lock and journal must be the host's, not the pod's.
  const runVolume = ds.slice(i).join("\n");
  assert(runVolume.includes(`path: ${RUN_DIR}`));
  assert(runVolume.includes(`path: ${KSM_DIR}`));
});

Deno.test("daemonset.yaml and Containerfile: only variables the agent reads", () => {
  const read = new Set(
    [...agent.matchAll(/\$\{(MERGEMEM_[A-Z_]+):-/g)].map((m) => m[1]),
  );
  const set = values(ds, "name").filter((n) => n.startsWith("MERGEMEM_"));
  assert(set.length > 0);
  for (const n of set) assert(read.has(n), `the agent does not read ${n}`);
  const env = [...containerfile.matchAll(/\b(MERGEMEM_[A-Z_]+)=/g)].map((m) =>
    m[1]
  );
  for (const n of env) assert(read.has(n), `the agent does not read ${n}`);
});

Deno.test("daemonset.yaml: the image is this version's", () => {
  assertEquals(values(ds, "image"), [`localhost/mergemem:${version}`]);
});
