/** src/cli/args.ts: selectors and option values, input → output. */
import {
  deepStrictEqual as assertEquals,
  ok,
  throws,
} from "node:assert/strict";
import {
  noSelector,
  parseChoice,
  parseIntOption,
  parseSecondsOption,
  parseSelectors,
  parseStrict,
  SELECTOR_OPTIONS,
  type SelectorArgs,
  takeOptionalValues,
} from "../../src/cli/args.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";
import {
  OPTIONS as SCAN,
  parseScanArgs,
  type ScanArgs,
  type ScanRequest,
} from "../../src/cli/scan.ts";
import {
  OPTIONS as STATUS,
  parseStatusArgs,
  type StatusArgs,
} from "../../src/cli/status.ts";

const usage = (re: RegExp) => (e: unknown) =>
  e instanceof MergememError && e.kind === ErrorKind.Usage &&
  re.test(e.message);

const none: SelectorArgs = {
  comms: [],
  pids: [],
  users: [],
  all: false,
  cgroups: [],
  units: [],
  containers: [],
  pods: [],
  k8sNamespaces: [],
  images: [],
  composeProjects: [],
};
const selectors: {
  argv: string[];
  want?: Partial<SelectorArgs>;
  error?: RegExp;
}[] = [
  { argv: [], want: {} },
  { argv: ["--pid", "12,13", "--pid", "14"], want: { pids: [12, 13, 14] } },
  {
    argv: ["--user", "33", "--user", "www-data"],
    want: { users: [33, "www-data"] },
  },
  {
    argv: ["--comm", "apache2", "--all"],
    want: { comms: ["apache2"], all: true },
  },
  {
    argv: ["--cgroup", "system.slice/a.service", "--unit", "php8.2-fpm"],
    want: { cgroups: ["system.slice/a.service"], units: ["php8.2-fpm"] },
  },
  {
    argv: [
      "--container",
      "php-a",
      "--pod",
      "shop/web-1",
      "--k8s-namespace",
      "shop",
    ],
    want: {
      containers: ["php-a"],
      pods: ["shop/web-1"],
      k8sNamespaces: ["shop"],
    },
  },
  {
    argv: [
      "--image",
      "docker.io/library/php:8.2-fpm",
      "--image",
      "localhost:5000/team/app@sha256:" + "ab".repeat(32),
      "--compose-project",
      "shop_v2",
    ],
    want: {
      images: [
        "docker.io/library/php:8.2-fpm",
        "localhost:5000/team/app@sha256:" + "ab".repeat(32),
      ],
      composeProjects: ["shop_v2"],
    },
  },
  { argv: ["--image", "php fpm"], error: /--image: 'php fpm' is not a name/ },
  { argv: ["--image", "../x"], error: /--image: '..\/x' is not a name/ },
  {
    argv: ["--compose-project", "Shop"],
    error: /--compose-project: 'Shop' is not a name/,
  },
  { argv: ["--container", "a/b"], error: /--container: 'a\/b' is not a name/ },
  { argv: ["--pod", "../x"], error: /--pod: '..\/x' is not a name/ },
  {
    argv: ["--k8s-namespace", "Shop"],
    error: /--k8s-namespace: 'Shop' is not a name/,
  },
  { argv: ["--pid", "0"], error: /--pid: '0' is not a process id/ },
  { argv: ["--pid", "12,x"], error: /--pid: 'x'/ },
  {
    argv: ["--comm", "a-name-longer-than-15"],
    error: /--comm: .* cannot match/,
  },
  { argv: ["--unit", "a b"], error: /--unit: 'a b' is not a unit name/ },
  { argv: ["--bogus"], error: /bogus/ },
];
for (const c of selectors) {
  Deno.test(`parseSelectors(${c.argv.join(" ") || "nothing"})`, () => {
    const run = () =>
      parseSelectors(parseStrict(c.argv, SELECTOR_OPTIONS).values);
    if (c.error) return void throws(run, usage(c.error));
    const got = run();
    assertEquals(got, { ...none, ...c.want });
    assertEquals(noSelector(got), c.argv.length === 0);
  });
}

Deno.test("parseIntOption, parseSecondsOption, parseChoice", () => {
  assertEquals(parseIntOption("top", undefined, 10), 10);
  assertEquals(parseIntOption("top", "3", 10, 1, 5), 3);
  throws(
    () => parseIntOption("top", "9", 10, 1, 5),
    usage(/out of range 1\.\.5/),
  );
  throws(() => parseIntOption("top", "-1", 10), usage(/whole number/));
  assertEquals(parseSecondsOption("timeout", "0.5", 60), 0.5);
  throws(() => parseSecondsOption("timeout", "0", 60), usage(/seconds > 0/));
  assertEquals(
    parseChoice("engine", undefined, ["auto", "ptrace"], "auto"),
    "auto",
  );
  throws(
    () => parseChoice("engine", "kernel", ["auto", "ptrace"], "auto"),
    usage(/'kernel' is not one of auto, ptrace/),
  );
});

const optionalDecl = {
  prometheus: {
    type: "string",
    arg: "PATH",
    optionalValue: true,
    help: "x",
  },
  json: { type: "boolean", help: "y" },
} as const;
const optionalCases: {
  argv: string[];
  rest: string[];
  optional: Record<string, string | true>;
}[] = [
  { argv: [], rest: [], optional: {} },
  { argv: ["--json"], rest: ["--json"], optional: {} },
  { argv: ["--prometheus"], rest: [], optional: { prometheus: true } },
  {
    argv: ["--prometheus", "--json"],
    rest: ["--json"],
    optional: { prometheus: true },
  },
  {
    argv: ["--prometheus", "/d", "--json"],
    rest: ["--json"],
    optional: { prometheus: "/d" },
  },
  { argv: ["--prometheus=/f"], rest: [], optional: { prometheus: "/f" } },
  { argv: ["--prometheus="], rest: [], optional: { prometheus: "" } },
  {
    argv: ["--prometheus", "/a", "--prometheus"],
    rest: [],
    optional: { prometheus: true },
  },
  // A prefix is another option, and "--" ends the options.
  { argv: ["--prometheusx"], rest: ["--prometheusx"], optional: {} },
  {
    argv: ["--", "--prometheus"],
    rest: ["--", "--prometheus"],
    optional: {},
  },
];
for (const c of optionalCases) {
  Deno.test(`takeOptionalValues(${c.argv.join(" ") || "nothing"})`, () => {
    assertEquals(takeOptionalValues(c.argv, optionalDecl), {
      rest: c.rest,
      optional: c.optional,
    });
  });
}

// Every scan and status option, input → what the command then does. Each
// declared option must have a row here (checked below), so an option that
// is parsed but changes nothing cannot slip in.
const SCAN_DEFAULTS: ScanRequest = {
  help: false,
  selection: none,
  checksum: "xxh64",
  strategy: "hash",
  backend: "auto",
  verify: false,
  top: 10,
  strict: false,
  json: false,
};
const scanCases: {
  argv: string[];
  want?: Partial<ScanRequest> | ScanArgs;
  error?: RegExp;
}[] = [
  { argv: [], want: {} },
  { argv: ["--help"], want: { help: true } },
  { argv: ["-h"], want: { help: true } },
  // --help wins over wrong values, but not over unknown options.
  { argv: ["--top", "0", "--help"], want: { help: true } },
  { argv: ["--help", "--bogus"], error: /'--bogus'/ },
  {
    argv: ["--comm", "httpd", "--pid", "7", "--user", "33", "--all"],
    want: {
      selection: {
        ...none,
        comms: ["httpd"],
        pids: [7],
        users: [33],
        all: true,
      },
    },
  },
  {
    argv: ["--cgroup", "system.slice", "--unit", "apache2"],
    want: {
      selection: { ...none, cgroups: ["system.slice"], units: ["apache2"] },
    },
  },
  {
    argv: ["--container", "a", "--pod", "b", "--k8s-namespace", "c"],
    want: {
      selection: {
        ...none,
        containers: ["a"],
        pods: ["b"],
        k8sNamespaces: ["c"],
      },
    },
  },
  {
    argv: ["--image", "php:8.2-fpm", "--compose-project", "shop"],
    want: {
      selection: {
        ...none,
        images: ["php:8.2-fpm"],
        composeProjects: ["shop"],
      },
    },
  },
  // Only the module's xxh64 runs in the kernel: another checksum is user's.
  {
    argv: ["--checksum", "crc32"],
    want: { checksum: "crc32", backend: "user" },
  },
  {
    argv: ["--checksum", "xxh64", "--backend", "kernel"],
    want: { backend: "kernel" },
  },
  { argv: ["--checksum", "md5"], error: /--checksum: 'md5' is not one of/ },
  {
    argv: ["--checksum", "fast", "--backend", "kernel"],
    error: /--backend kernel computes xxh64/,
  },
  { argv: ["--verify"], want: { verify: true } },
  { argv: ["--strategy", "equalv"], want: { strategy: "equalv" } },
  { argv: ["--strategy", "ksm"], error: /--strategy: 'ksm'/ },
  { argv: ["--backend", "user"], want: { backend: "user" } },
  { argv: ["--backend=kernel"], want: { backend: "kernel" } },
  { argv: ["--backend", "gpu"], error: /--backend: 'gpu'/ },
  { argv: ["--top", "3"], want: { top: 3 } },
  { argv: ["--top", "0"], error: /--top: 0 is out of range/ },
  { argv: ["--top"], error: /--top/ },
  { argv: ["--strict"], want: { strict: true } },
  { argv: ["--json"], want: { json: true } },
  { argv: ["--sample", "64"], want: { sample: 64 } },
  { argv: ["--sample", "1"], want: { sample: 1 } },
  {
    argv: ["--sample", "8", "--sample-slice", "7"],
    want: { sample: 8, sampleSlice: 7 },
  },
  { argv: ["--sample", "0"], error: /--sample: 0 is out of range 1\.\./ },
  { argv: ["--sample", "x"], error: /--sample: expected a whole number/ },
  { argv: ["--sample", "-3"], error: /--sample/ },
  {
    argv: ["--sample", "8", "--sample-slice", "8"],
    error: /--sample-slice: 8 is out of range 0\.\.7/,
  },
  { argv: ["--sample-slice", "1"], error: /--sample-slice needs --sample N/ },
  {
    argv: ["--sample", "4", "--strategy", "equalv"],
    error: /--sample needs xxh64 and the hash strategy/,
  },
  {
    argv: ["--sample", "4", "--checksum", "crc32"],
    error: /--sample needs xxh64/,
  },
  { argv: ["--max-memory", "64"], want: { maxMemory: 64 * 1024 * 1024 } },
  { argv: ["--max-memory", "0"], error: /--max-memory: 0 is out of range/ },
  { argv: ["--bogus"], error: /^Unknown option '--bogus'$/ },
  { argv: ["httpd"], error: /^Unexpected argument 'httpd'/ },
  // merge's and status's options are not scan's.
  { argv: ["--dry-run"], error: /'--dry-run'/ },
  { argv: ["--prometheus"], error: /'--prometheus'/ },
];
for (const c of scanCases) {
  Deno.test(`parseScanArgs(${c.argv.join(" ") || "nothing"})`, () => {
    const run = () => parseScanArgs(c.argv);
    if (c.error) return void throws(run, usage(c.error));
    assertEquals(
      run(),
      c.want?.help ? { help: true } : { ...SCAN_DEFAULTS, ...c.want },
    );
  });
}

const statusCases: {
  argv: string[];
  want?: Partial<StatusArgs>;
  error?: RegExp;
}[] = [
  { argv: [], want: {} },
  { argv: ["--help"], want: { help: true } },
  { argv: ["-h"], want: { help: true } },
  { argv: ["--json"], want: { json: true } },
  { argv: ["--prometheus"], want: { prometheus: true } },
  { argv: ["--prometheus", "/d"], want: { prometheus: "/d" } },
  {
    argv: ["--prometheus=/d/m.prom", "--json"],
    want: { prometheus: "/d/m.prom", json: true },
  },
  { argv: ["--prometheus="], error: /PATH is empty/ },
  {
    argv: ["--prometheus", "--json"],
    error: /--json with --prometheus needs a PATH/,
  },
  {
    argv: ["--json", "--prometheus", "--help"],
    want: { help: true, json: true, prometheus: true },
  },
  { argv: ["--bogus"], error: /^Unknown option '--bogus'$/ },
  { argv: ["--prometheus", "-x"], error: /^Unknown option '-x'$/ },
  { argv: ["now"], error: /^Unexpected argument 'now'/ },
  // status selects no processes.
  { argv: ["--comm", "httpd"], error: /'--comm'/ },
];
for (const c of statusCases) {
  Deno.test(`parseStatusArgs(${c.argv.join(" ") || "nothing"})`, () => {
    const run = () => parseStatusArgs(c.argv);
    if (c.error) return void throws(run, usage(c.error));
    assertEquals(run(), {
      help: false,
      json: false,
      prometheus: null,
      ...c.want,
    });
  });
}

for (
  const [cmd, options, cases] of [
    ["scan", { ...SELECTOR_OPTIONS, ...SCAN }, scanCases],
    ["status", STATUS, statusCases],
  ] as const
) {
  Deno.test(`every ${cmd} option has a parse case that changes the result`, () => {
    for (const name of Object.keys(options)) {
      ok(
        cases.some((c) =>
          c.want && Object.keys(c.want).length > 0 &&
          c.argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))
        ),
        `no case parses --${name} into a result`,
      );
    }
  });
}
