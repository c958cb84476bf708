/** src/proc/tenant.ts, runtime.ts and containers.ts: containers, pods and
 * namespaces from /proc/PID/cgroup as each runtime lays them out. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import {
  kubeletPods,
  type Tenancy,
  tenancyFromCgroupFile,
  TenancyReader,
} from "../../src/proc/tenant.ts";
import { parseDockerPs, parsePodmanPs } from "../../src/proc/runtime.ts";
import {
  imageMatches,
  nameContainers,
  tenantPids,
} from "../../src/proc/containers.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";

const ID = "3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const POD = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const UID = "5d0c5f43-6a1e-4c1a-9a39-2e7d8c3b1f00";
const UIDU = UID.replaceAll("-", "_");

// [layout, /proc/PID/cgroup, container (runtime id), pod (kind uid)]
const layouts: [string, string, string | null, string | null][] = [
  ["host, pure v2", "0::/system.slice/ssh.service\n", null, null],
  [
    "host, this CI machine's hybrid layout",
    "9:name=systemd:/\n4:memory:/process_api/74a9f15ca5d0112748fee288442e1ef5\n0::/\n",
    null,
    null,
  ],
  [
    "podman, systemd manager",
    `0::/machine.slice/libpod-${ID}.scope\n`,
    `podman ${ID}`,
    null,
  ],
  [
    "podman conmon is a host process",
    `0::/machine.slice/libpod-conmon-${ID}.scope\n`,
    null,
    null,
  ],
  [
    "podman, cgroupfs manager",
    `0::/libpod_parent/libpod-${ID}\n`,
    `podman ${ID}`,
    null,
  ],
  [
    "podman pod, cgroupfs",
    `0::/libpod_parent/${POD}/libpod-${ID}\n`,
    `podman ${ID}`,
    `podman ${POD}`,
  ],
  [
    "podman pod, systemd",
    `0::/machine.slice/machine-libpod_pod_${POD}.slice/libpod-${ID}.scope\n`,
    `podman ${ID}`,
    `podman ${POD}`,
  ],
  [
    "podman, a process in a sub-cgroup of the container",
    `0::/machine.slice/libpod-${ID}.scope/container\n`,
    `podman ${ID}`,
    null,
  ],
  [
    "docker, systemd driver",
    `0::/system.slice/docker-${ID}.scope\n`,
    `docker ${ID}`,
    null,
  ],
  ["docker, cgroupfs driver", `0::/docker/${ID}\n`, `docker ${ID}`, null],
  [
    "docker on a hybrid host: only the v1 lines",
    `12:memory:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/system.slice/containerd.service\n`,
    `docker ${ID}`,
    null,
  ],
  [
    "kubelet systemd, containerd, burstable",
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice/cri-containerd-${ID}.scope\n`,
    `containerd ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "kubelet systemd, CRI-O, besteffort",
    `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UIDU}.slice/crio-${ID}.scope\n`,
    `cri-o ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "kubelet systemd, guaranteed",
    `0::/kubepods.slice/kubepods-pod${UIDU}.slice/cri-containerd-${ID}.scope\n`,
    `containerd ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "kubelet cgroupfs",
    `0::/kubepods/burstable/pod${UID}/${ID}\n`,
    `containerd ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "kubelet cgroupfs, guaranteed",
    `0::/kubepods/pod${UID}/${ID}\n`,
    `containerd ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "seen from another cgroup namespace (an agent)",
    `0::/../../kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice/cri-containerd-${ID}.scope\n`,
    `containerd ${ID}`,
    `kubernetes ${UID}`,
  ],
  [
    "a pod's sandbox (pause) with no container scope",
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice\n`,
    null,
    `kubernetes ${UID}`,
  ],
  [
    "systemd-nspawn / machined",
    "0::/machine.slice/machine-web\\x2d1.scope/payload\n",
    "nspawn web-1",
    null,
  ],
  [
    "systemd-nspawn@.service",
    "0::/machine.slice/systemd-nspawn@db.service/payload\n",
    "nspawn db",
    null,
  ],
  ["LXC 4+", "0::/lxc.payload.tenant1/init.scope\n", "lxc tenant1", null],
  ["LXC before 4", "0::/lxc/tenant2\n", "lxc tenant2", null],
];

for (const [name, text, container, pod] of layouts) {
  Deno.test(`tenancyFromCgroupFile: ${name}`, () => {
    const t = tenancyFromCgroupFile(text);
    assertEquals(
      t.container && `${t.container.runtime} ${t.container.id}`,
      container,
    );
    assertEquals(t.pod && `${t.pod.kind} ${t.pod.uid}`, pod);
  });
}

Deno.test("kubeletPods: namespace and name by pod UID from /var/log/pods", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/shop_web-7d9f-abcde_${UID}`);
    Deno.mkdirSync(`${dir}/not-a-pod-dir`);
    assertEquals(
      [...kubeletPods(dir)],
      [[UID, { namespace: "shop", name: "web-7d9f-abcde" }]],
    );
    assertEquals(kubeletPods(`${dir}/missing`).size, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("TenancyReader: a /proc tree with a Kubernetes pod and its own user namespace", () => {
  const root = Deno.makeTempDirSync();
  try {
    const proc = `${root}/proc`, logs = `${root}/pods`;
    Deno.mkdirSync(`${logs}/shop_web-1_${UID}`, { recursive: true });
    for (
      const [pid, cg, ns] of [
        ["self", "0::/init.scope\n", "user:[4026531837]"],
        [10, "0::/system.slice/x.service\n", "user:[4026531837]"],
        [
          20,
          `0::/kubepods/burstable/pod${UID}/${ID}\n`,
          "user:[4026532999]",
        ],
      ] as const
    ) {
      Deno.mkdirSync(`${proc}/${pid}/ns`, { recursive: true });
      Deno.writeTextFileSync(`${proc}/${pid}/cgroup`, cg);
      Deno.symlinkSync(ns, `${proc}/${pid}/ns/user`);
    }
    const r = new TenancyReader({ proc, podLogDir: logs });
    assertEquals(r.read(10), { container: null, pod: null, userns: null });
    assertEquals(r.read(20), {
      container: { runtime: "containerd", id: ID },
      pod: { kind: "kubernetes", uid: UID, namespace: "shop", name: "web-1" },
      userns: "user:[4026532999]",
    });
    throws(() => r.read(30), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("parsePodmanPs and parseDockerPs: ids, names, pods, compose projects", () => {
  const podman = parsePodmanPs(JSON.stringify([{
    Id: ID,
    Names: ["php-a-1"],
    Pod: POD,
    PodName: "tenant-a",
    Image: "localhost/php:1",
    Labels: { "io.podman.compose.project": "shop" },
  }]));
  assertEquals(podman, [{
    runtime: "podman",
    id: ID,
    names: ["php-a-1"],
    pod: { id: POD, name: "tenant-a" },
    image: "localhost/php:1",
    project: "shop",
  }]);
  const docker = parseDockerPs(
    JSON.stringify({
      ID,
      Names: "web_1",
      Image: "nginx",
      Labels: "com.docker.compose.project=blog,x=y",
    }) + "\n",
  );
  assertEquals(docker, [{
    runtime: "docker",
    id: ID,
    names: ["web_1"],
    image: "nginx",
    project: "blog",
  }]);
});

Deno.test("tenantPids: names, id prefixes, pods, namespaces; unknown and ambiguous names", () => {
  const ID2 = "3f2a" + "0".repeat(60);
  const byPid = new Map<number, Tenancy>([
    [1, { container: null, pod: null, userns: null }],
    [10, {
      container: { runtime: "podman", id: ID },
      pod: { kind: "podman", uid: POD },
      userns: null,
    }],
    [11, {
      container: { runtime: "podman", id: ID2 },
      pod: null,
      userns: null,
    }],
    [20, {
      container: { runtime: "containerd", id: "c".repeat(64) },
      pod: { kind: "kubernetes", uid: UID, namespace: "shop", name: "web-1" },
      userns: null,
    }],
  ]);
  nameContainers(byPid, {
    runtimes: ["podman"],
    containers: [{
      runtime: "podman",
      id: ID,
      names: ["php-a-1"],
      pod: { id: POD, name: "tenant-a" },
    }],
  });
  const map = { byPid, runtimes: ["podman"] };
  const pids = (sel: Parameters<typeof tenantPids>[0]) =>
    [...tenantPids(sel, map)].sort((a, b) => a - b);
  assertEquals(pids({ containers: ["php-a-1"] }), [10]);
  assertEquals(pids({ containers: [ID2.slice(0, 8)] }), [11]);
  assertEquals(pids({ pods: ["tenant-a"] }), [10]);
  assertEquals(pids({ pods: ["shop/web-1"] }), [20]);
  assertEquals(pids({ pods: [UID.slice(0, 8)] }), [20]);
  assertEquals(pids({ k8sNamespaces: ["shop"] }), [20]);
  const err = (re: RegExp, kind: string) => (e: unknown) =>
    e instanceof MergememError && e.kind === kind && re.test(e.message);
  throws(
    () => pids({ containers: ["nope"] }),
    err(
      /^no container .nope. is running \(containers: containerd cccccccccccc, php-a-1, podman 3f2a00000000\)$/,
      ErrorKind.NothingScannable,
    ),
  );
  throws(
    () => pids({ containers: ["3f2a"] }),
    err(
      /^container '3f2a' is ambiguous: it matches 3f2a00000000, 3f2a9c1b4d5e$/,
      ErrorKind.Usage,
    ),
  );
  throws(
    () => pids({ k8sNamespaces: ["other"] }),
    err(
      /no Kubernetes namespace 'other' is running \(Kubernetes namespaces: shop\)/,
      ErrorKind.NothingScannable,
    ),
  );
  const bare = { byPid: new Map([[1, byPid.get(1)!]]), runtimes: [] };
  throws(
    () => tenantPids({ containers: ["x"] }, bare),
    err(
      /no process on this host runs in a container and no container runtime \(podman, docker\) is installed/,
      ErrorKind.NothingScannable,
    ),
  );
  assert(true);
});

Deno.test("tenantPids: images and compose projects, from the runtime's listing", () => {
  const ID2 = "3f2a" + "0".repeat(60);
  const byPid = new Map<number, Tenancy>([
    [1, { container: null, pod: null, userns: null }],
    [10, {
      container: { runtime: "docker", id: ID },
      pod: null,
      userns: null,
    }],
    [11, {
      container: { runtime: "docker", id: ID2 },
      pod: null,
      userns: null,
    }],
  ]);
  nameContainers(byPid, {
    runtimes: ["docker"],
    containers: [
      {
        runtime: "docker",
        id: ID,
        names: ["shop-web-1"],
        image: "docker.io/library/php:8.2-fpm",
        project: "shop",
      },
      { runtime: "docker", id: ID2, names: ["blog"], image: "nginx" },
    ],
  });
  const map = { byPid, runtimes: ["docker"] };
  const pids = (sel: Parameters<typeof tenantPids>[0]) =>
    [...tenantPids(sel, map)].sort((a, b) => a - b);
  assertEquals(pids({ images: ["php"] }), [10]);
  assertEquals(pids({ images: ["php:8.2-fpm"] }), [10]);
  assertEquals(pids({ images: ["nginx", "php"] }), [10, 11]);
  assertEquals(pids({ composeProjects: ["shop"] }), [10]);
  const err = (re: RegExp) => (e: unknown) =>
    e instanceof MergememError && e.kind === ErrorKind.NothingScannable &&
    re.test(e.message);
  throws(
    () => pids({ images: ["php:8.3-fpm"] }),
    err(
      /^no image 'php:8.3-fpm' is running \(images: docker.io\/library\/php:8.2-fpm, nginx\)$/,
    ),
  );
  throws(
    () => pids({ composeProjects: ["blog"] }),
    err(/^no compose project 'blog' is running \(compose projects: shop\)$/),
  );
  // Containers, but no runtime to say what runs in them.
  throws(
    () =>
      tenantPids({ images: ["php"] }, {
        byPid: new Map([[10, {
          container: { runtime: "docker", id: ID },
          pod: null,
          userns: null,
        }]]),
        runtimes: [],
      }),
    err(
      /^no image 'php': images and compose projects are known only through a container runtime, and none \(podman, docker\) is installed$/,
    ),
  );
});

const imageCases: [string, string, boolean][] = [
  ["docker.io/library/php:8.2-fpm", "docker.io/library/php:8.2-fpm", true],
  ["docker.io/library/php:8.2-fpm", "php:8.2-fpm", true],
  ["docker.io/library/php:8.2-fpm", "php", true],
  ["docker.io/library/php:8.2-fpm", "library/php", true],
  ["docker.io/library/php:8.2-fpm", "php:8.3-fpm", false],
  ["docker.io/library/php:8.2-fpm", "ph", false],
  ["localhost/mergemem:0.1.0", "mergemem", true],
  ["localhost/mergemem:0.1.0", "localhost/mergemem:0.1.0", true],
  ["quay.io/team/app:1", "team/app", false],
  ["quay.io/team/app:1", "quay.io/team/app", true],
  ["registry:5000/app:1", "registry:5000/app", true],
  ["registry:5000/app:1", "registry", false],
  ["app@sha256:" + "ab".repeat(32), "app", true],
];
for (const [image, wanted, want] of imageCases) {
  Deno.test(`imageMatches(${image}, ${wanted}) is ${want}`, () => {
    assertEquals(imageMatches(image, wanted), want);
  });
}
