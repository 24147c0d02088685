import { readFileSync } from "node:fs";
import * as path from "node:path";
import type {
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import Ajv from "ajv";
import program from "../../infra/index";
import {
  exposesLoadBalancer,
  gkeClusterHardened,
  gkeDeletionProtectionOff,
  gkeNodesDedicatedServiceAccount,
  imagesPinnedByDigest,
  kubeconfigWithoutStaticCredentials,
  loadBalancersWhereAllowed,
  podProbesAndResources,
  podReadOnlyRootFilesystem,
  podSecurityRestricted,
  policies,
  singlePublicEntryPoint,
  weightedRoutesGated,
} from "../../infra/policy/policies";
import { podPolicyViolations, type PodSpec } from "../../infra/policy/workloads";
import { type RecordedResource, type RecordedRun } from "../infra/harness/recorded-run";
import { recordResources } from "../infra/harness/recording";
import { readStackConfig, REPO_ROOT } from "../infra/harness/stack-config";

const POLICY_DIR = path.join(REPO_ROOT, "infra", "policy");
const STACKS = ["dev", "gke"] as const;
type Stack = (typeof STACKS)[number];
/** A canary of the built-in model at version 2, as a stack's config adds it. */
const CANARY = {
  canaryModelUri: "https://models.example.com/iris/v2.onnx",
  canaryModelVersion: "2",
  canaryGoldenRequests: "service/models/iris.golden.json",
};

/** A policy config file as `pulumi preview --policy-pack-config` reads it. */
type PolicyConfigFile = Record<string, Record<string, unknown>>;

function policyConfig(stack: Stack | "cluster"): PolicyConfigFile {
  return JSON.parse(
    readFileSync(path.join(POLICY_DIR, "config", `${stack}.json`), "utf8"),
  ) as PolicyConfigFile;
}

/** What the engine passes `getConfig`: the policy's entry of the file, without its level. */
function configFor(file: PolicyConfigFile, policy: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(file[policy] ?? {}).filter(([key]) => key !== "enforcementLevel"),
  );
}

/** Inputs a broken variant edits deep inside; typing every path would obscure the edit. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EditableProps = Record<string, any>;

class NotApplicable extends Error {}

function isSecretValue(value: unknown): value is { value: unknown } {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<string, unknown>)[specialSigKey] === specialSecretSig
  );
}

/**
 * Props as the policy SDK hands them to a policy: secrets unwrapped to their plain values (its
 * analyzer deserializes with the secret marker dropped).
 */
function engineProps(value: unknown): unknown {
  if (isSecretValue(value)) {
    return engineProps(value.value);
  }
  if (Array.isArray(value)) {
    return value.map(engineProps);
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, engineProps(v)]));
  }
  return value;
}

/** A recorded resource as the analyzer sees it before creating it: its inputs. */
function asAnalyzed(resource: RecordedResource) {
  return {
    type: resource.type,
    name: resource.name,
    urn: resource.urn,
    props: engineProps(resource.inputs) as Record<string, unknown>,
  };
}

/**
 * Recorded resources as the stack analyzer sees them after an update: outputs, secrets
 * unwrapped, dependencies resolved to the resources themselves.
 */
function asStack(
  run: RecordedRun,
  edit: (name: string, props: EditableProps) => void = () => undefined,
): PolicyResource[] {
  const byUrn = new Map<string, PolicyResource>();
  for (const r of run.resources) {
    const props = engineProps(structuredClone(r.state)) as Record<string, unknown>;
    edit(r.name, props);
    byUrn.set(r.urn, {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props,
      dependencies: [],
    } as unknown as PolicyResource);
  }
  for (const r of run.resources) {
    (byUrn.get(r.urn) as PolicyResource).dependencies = r.dependencies.flatMap(
      (urn) => byUrn.get(urn) ?? [],
    );
  }
  return [...byUrn.values()];
}

type Outcome = { readonly applicable: false } | { readonly applicable: true; violations: string[] };

/**
 * Runs a resource policy the way the analyzer server does for one resource: plain props (the
 * SDK unwraps secrets), the logical name, this policy's config, and notApplicable as a throw.
 */
async function validate(
  policy: ResourceValidationPolicy,
  resource: { type: string; name: string; urn?: string; props: Record<string, unknown> },
  config: PolicyConfigFile = {},
): Promise<Outcome> {
  const violations: string[] = [];
  const args = {
    type: resource.type,
    props: resource.props,
    urn: resource.urn ?? `urn:pulumi:test::mlscore::${resource.type}::${resource.name}`,
    name: resource.name,
    opts: {
      protect: false,
      ignoreChanges: [],
      aliases: [],
      customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      additionalSecretOutputs: [],
    },
    stackTags: new Map<string, string>(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => configFor(config, policy.name) as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicable(reason);
    },
  } as ResourceValidationArgs;
  const validations = [policy.validateResource ?? []].flat();
  try {
    for (const validation of validations) {
      await validation(args, (message) => violations.push(message));
    }
  } catch (error) {
    if (error instanceof NotApplicable) {
      return { applicable: false };
    }
    throw error;
  }
  return { applicable: true, violations };
}

/** Runs a stack policy over resources as the engine passes them after an update: their outputs. */
async function validateStack(
  policy: StackValidationPolicy,
  resources: PolicyResource[],
): Promise<string[]> {
  const violations: string[] = [];
  await policy.validateStack(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: (reason?: string): never => {
        throw new NotApplicable(reason);
      },
    },
    (message) => violations.push(message),
  );
  return violations;
}

const resourcePolicies = policies.filter(
  (p): p is ResourceValidationPolicy => "validateResource" in p,
);
const stackPolicies = policies.filter((p): p is StackValidationPolicy => "validateStack" in p);
/** The policies over pod specs: together they are the workload policy. */
const podPolicies = [
  podSecurityRestricted,
  podReadOnlyRootFilesystem,
  podProbesAndResources,
  imagesPinnedByDigest,
];

const GKE_PROJECT = "mlscore-policy-test";
/** Each stack that has a policy config file, as its config reads. */
const CONFIG_STACKS = {
  dev: () => readStackConfig("dev"),
  gke: () => ({ ...readStackConfig("gke"), "gcp:project": GKE_PROJECT }),
  cluster: () => ({
    ...readStackConfig("cluster"),
    "mlscore:target": "cluster",
    "mlscore:image": `registry.example.com/mlscore@sha256:${"0".repeat(64)}`,
  }),
};
const runs = new Map<Stack, RecordedRun>();
/** The same stacks, each with a canary. */
const canaryRuns = new Map<Stack, RecordedRun>();

beforeAll(async () => {
  for (const [target, extra] of [
    [runs, {}],
    [canaryRuns, CANARY],
  ] as const) {
    target.set(
      "dev",
      await recordResources(program, {
        stack: "dev",
        config: { ...readStackConfig("dev"), ...extra },
      }),
    );
    target.set(
      "gke",
      await recordResources(program, {
        stack: "gke",
        config: { ...readStackConfig("gke"), "gcp:project": GKE_PROJECT, ...extra },
      }),
    );
  }
}, 120_000);

/** Resources the engine analyzes before creating them: declared custom resources, with inputs. */
function analyzed(run: RecordedRun): RecordedResource[] {
  return run.resources.filter((r) => r.custom && !r.read);
}

function one(run: RecordedRun, type: string, name: string): RecordedResource {
  return run.one(type, name);
}

/** A deep copy of a resource's inputs with `edit` applied, as a broken variant of it. */
function broken(
  resource: RecordedResource,
  edit: (props: EditableProps) => void,
): { type: string; name: string; props: Record<string, unknown> } {
  const props = engineProps(structuredClone(resource.inputs)) as EditableProps;
  edit(props);
  return { type: resource.type, name: resource.name, props };
}

describe("the policy pack's shape", () => {
  it("has unique names and an enforcement level chosen for every policy", () => {
    const names = policies.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    for (const policy of policies) {
      expect(["mandatory", "advisory"]).toContain(policy.enforcementLevel);
    }
    expect(gkeDeletionProtectionOff.enforcementLevel).toBe("advisory");
    expect(policies.filter((p) => p.enforcementLevel === "advisory")).toEqual([
      gkeDeletionProtectionOff,
    ]);
  });

  it.each(STACKS)(
    "ships a %s policy config naming only real policies, valid by their schema",
    (stack) => {
      const file = policyConfig(stack);
      const ajv = new Ajv({ strict: false });
      for (const name of Object.keys(file)) {
        expect(policies.map((p) => p.name)).toContain(name);
        const policy = policies.find((p) => p.name === name);
        const schema = { type: "object", additionalProperties: false, ...policy?.configSchema };
        const valid = ajv.validate(schema, configFor(file, name));
        expect(ajv.errorsText()).toBe("No errors");
        expect(valid).toBe(true);
      }
    },
  );

  // A name the program never gives a load balancer allows nothing, and the one it does give is
  // then refused: cluster.json once named the gateway's Helm release instead of its Service.
  it.each(Object.keys(CONFIG_STACKS) as Array<keyof typeof CONFIG_STACKS>)(
    "ships a %s policy config allowing only resources that stack declares as load balancers",
    async (stack) => {
      const declared = new Set<string>();
      for (const istioEnabled of [true, false]) {
        const run = await recordResources(program, {
          stack,
          config: { ...CONFIG_STACKS[stack](), istioEnabled },
        });
        run.resources
          .filter((r) => exposesLoadBalancer(r.type, engineProps(r.inputs) as EditableProps))
          .forEach((r) => declared.add(r.name));
      }
      const allowed = (policyConfig(stack)["load-balancers-where-allowed"]?.allowedResources ??
        []) as string[];
      expect(allowed.length).toBeGreaterThan(0);
      expect(allowed.filter((name) => !declared.has(name))).toEqual([]);
    },
    60_000,
  );

  it("is loadable as a pack: PulumiPolicy.yaml runs nodejs and package.json has a version", () => {
    const manifest = readFileSync(path.join(POLICY_DIR, "PulumiPolicy.yaml"), "utf8");
    expect(manifest).toMatch(/runtime:\s*\n\s+name: nodejs/);
    const pkg = JSON.parse(readFileSync(path.join(POLICY_DIR, "package.json"), "utf8")) as {
      version?: string;
      main?: string;
      dependencies?: object;
    };
    // PolicyPack reads the version from package.json in the directory the CLI starts it in.
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.main).toBe("index.ts");
    // @pulumi/policy resolves from the root workspace's node_modules, one copy for everyone.
    expect(pkg.dependencies).toBeUndefined();
    expect(require.resolve("@pulumi/policy", { paths: [POLICY_DIR] })).toBe(
      require.resolve("@pulumi/policy"),
    );
  });
});

describe.each(
  STACKS.flatMap(
    (stack) =>
      [
        [stack, runs],
        [`${stack} + canary`, canaryRuns],
      ] as const,
  ),
)("the %s stack as the program declares it", (name, stacks) => {
  const stack = name.split(" ")[0] as Stack;
  it("passes every resource policy on every resource the engine would analyze", async () => {
    const run = stacks.get(stack) as RecordedRun;
    const failures: string[] = [];
    let applied = 0;
    for (const resource of analyzed(run)) {
      for (const policy of resourcePolicies) {
        const outcome = await validate(policy, asAnalyzed(resource), policyConfig(stack));
        if (outcome.applicable) {
          applied += 1;
          failures.push(...outcome.violations.map((v) => `${policy.name}: ${v}`));
        }
      }
    }
    expect(failures).toEqual([]);
    // The pod, image, load balancer and provider policies all found something to check.
    expect(applied).toBeGreaterThanOrEqual(stack === "gke" ? 8 : 6);
  });

  it("passes every stack policy on the resources' outputs", async () => {
    const run = stacks.get(stack) as RecordedRun;
    for (const policy of stackPolicies) {
      expect(await validateStack(policy, asStack(run))).toEqual([]);
    }
  });
});

describe("policies against deliberately broken resources", () => {
  const dev = () => runs.get("dev") as RecordedRun;
  const gke = () => runs.get("gke") as RecordedRun;
  const deployment = () => one(dev(), "kubernetes:apps/v1:Deployment", "scoring-deployment");
  const container = (props: EditableProps) => props.spec.template.spec.containers[0];

  const cases: Array<
    [string, ResourceValidationPolicy, () => Parameters<typeof validate>[1], string]
  > = [
    [
      "a container allowed to run as root",
      podSecurityRestricted,
      () =>
        broken(deployment(), (p) => {
          delete p.spec.template.spec.securityContext.runAsNonRoot;
          delete container(p).securityContext.runAsNonRoot;
        }),
      'scoring-deployment: container "scoring": runAsNonRoot must be true (pod or container securityContext)',
    ],
    [
      "privilege escalation",
      podSecurityRestricted,
      () =>
        broken(deployment(), (p) => (container(p).securityContext.allowPrivilegeEscalation = true)),
      'container "scoring": allowPrivilegeEscalation must be false',
    ],
    [
      "capabilities not dropped",
      podSecurityRestricted,
      () =>
        broken(
          deployment(),
          (p) => (container(p).securityContext.capabilities = { add: ["SYS_ADMIN"] }),
        ),
      'container "scoring": capabilities.drop must include ALL',
    ],
    [
      "no seccomp profile",
      podSecurityRestricted,
      () =>
        broken(deployment(), (p) => {
          delete p.spec.template.spec.securityContext.seccompProfile;
          delete container(p).securityContext.seccompProfile;
        }),
      'container "scoring": seccompProfile.type must be RuntimeDefault (or Localhost)',
    ],
    [
      "uid 0 on the pod, even with every container overriding it",
      podSecurityRestricted,
      () =>
        broken(deployment(), (p) => {
          p.spec.template.spec.securityContext.runAsUser = 0;
          container(p).securityContext.runAsUser = 65532;
        }),
      "scoring-deployment: pod: runAsUser 0 is root; use a non-zero uid such as 65532",
    ],
    [
      "the host network",
      podSecurityRestricted,
      () => broken(deployment(), (p) => (p.spec.template.spec.hostNetwork = true)),
      "scoring-deployment: pod: hostNetwork shares the node's namespace; remove it",
    ],
    [
      "a hostPath volume",
      podSecurityRestricted,
      () =>
        broken(deployment(), (p) =>
          p.spec.template.spec.volumes.push({ name: "docker", hostPath: { path: "/var/run" } }),
        ),
      'pod: volume "docker" is a hostPath; use an emptyDir or a PVC',
    ],
    [
      "a host port",
      podSecurityRestricted,
      () => broken(deployment(), (p) => (container(p).ports[0].hostPort = 8080)),
      'container "scoring": hostPort 8080 binds the node\'s port; remove it',
    ],
    [
      "a writable root filesystem",
      podReadOnlyRootFilesystem,
      () =>
        broken(deployment(), (p) => (container(p).securityContext.readOnlyRootFilesystem = false)),
      'scoring-deployment: container "scoring": readOnlyRootFilesystem must be true; mount an emptyDir where it writes',
    ],
    [
      "no readiness probe",
      podProbesAndResources,
      () => broken(deployment(), (p) => delete container(p).readinessProbe),
      'scoring-deployment: container "scoring": no readinessProbe; traffic would reach it before it is ready',
    ],
    [
      "no liveness probe",
      podProbesAndResources,
      () => broken(deployment(), (p) => delete container(p).livenessProbe),
      'container "scoring": no livenessProbe; a hung process would never be restarted',
    ],
    [
      "no memory limit",
      podProbesAndResources,
      () => broken(deployment(), (p) => delete container(p).resources.limits.memory),
      'scoring-deployment: container "scoring": no memory limit',
    ],
    [
      "an image on latest",
      imagesPinnedByDigest,
      () =>
        broken(deployment(), (p) => (container(p).image = "localhost:5001/mlscore-scoring:latest")),
      'scoring-deployment: container "scoring": image "localhost:5001/mlscore-scoring:latest" is not pinned by digest; use repository@sha256:<digest> (never latest or a tag alone)',
    ],
    [
      "an image with a tag only",
      imagesPinnedByDigest,
      () => broken(deployment(), (p) => (container(p).image = "mlscore-scoring:src-0123")),
      'image "mlscore-scoring:src-0123" is not pinned by digest',
    ],
    [
      "a bare Pod without a securityContext",
      podSecurityRestricted,
      () => ({
        type: "kubernetes:core/v1:Pod",
        name: "debug",
        props: { spec: { containers: [{ name: "shell", image: "busybox" }] } },
      }),
      'debug: container "shell": runAsNonRoot must be true (pod or container securityContext)',
    ],
    [
      "the scoring Service as a LoadBalancer on gke",
      loadBalancersWhereAllowed,
      () =>
        broken(
          one(gke(), "kubernetes:core/v1:Service", "scoring-service"),
          (p) => (p.spec.type = "LoadBalancer"),
        ),
      "scoring-service asks for a LoadBalancer, which this stack allows only for [istio-gateway-service]; use ClusterIP behind the gateway, or allow it in infra/policy/config/<stack>.json",
    ],
    [
      "a node pool on the Compute Engine default service account",
      gkeNodesDedicatedServiceAccount,
      () =>
        broken(
          one(gke(), "gcp:container/nodePool:NodePool", "gke-nodes"),
          (p) =>
            (p.nodeConfig.serviceAccount = "123456789012-compute@developer.gserviceaccount.com"),
        ),
      "gke-nodes: nodeConfig.serviceAccount is the Compute Engine default; run the nodes as their own account with roles/container.defaultNodeServiceAccount",
    ],
    [
      "a node pool with no service account at all",
      gkeNodesDedicatedServiceAccount,
      () =>
        broken(
          one(gke(), "gcp:container/nodePool:NodePool", "gke-nodes"),
          (p) => delete p.nodeConfig.serviceAccount,
        ),
      "gke-nodes: nodeConfig.serviceAccount is the Compute Engine default",
    ],
    [
      "a cluster whose default pool runs as the default account",
      gkeNodesDedicatedServiceAccount,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => (p.nodeConfig.serviceAccount = "default"),
        ),
      "gke-cluster: nodeConfig.serviceAccount is the Compute Engine default",
    ],
    [
      "a GKE cluster without Workload Identity",
      gkeClusterHardened,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => delete p.workloadIdentityConfig,
        ),
      "gke-cluster: workloadIdentityConfig.workloadPool must be set (<project>.svc.id.goog)",
    ],
    [
      "a GKE cluster with legacy ABAC",
      gkeClusterHardened,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => (p.enableLegacyAbac = true),
        ),
      "gke-cluster: enableLegacyAbac must be off; RBAC is the only authorizer",
    ],
    [
      "a GKE cluster with basic auth",
      gkeClusterHardened,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => (p.masterAuth = { username: "admin", password: "hunter2hunter2hunter2" }),
        ),
      "gke-cluster: masterAuth basic auth (username/password) must not be set",
    ],
    [
      "a GKE cluster issuing client certificates",
      gkeClusterHardened,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => (p.masterAuth = { clientCertificateConfig: { issueClientCertificate: true } }),
        ),
      "gke-cluster: masterAuth must not issue a client certificate",
    ],
    [
      "a GKE cluster with deletion protection",
      gkeDeletionProtectionOff,
      () =>
        broken(
          one(gke(), "gcp:container/cluster:Cluster", "gke-cluster"),
          (p) => delete p.deletionProtection,
        ),
      "gke-cluster: deletionProtection is on; pulumi destroy will fail on this cluster",
    ],
    [
      "a kubeconfig with a bearer token",
      kubeconfigWithoutStaticCredentials,
      () =>
        broken(
          one(gke(), "pulumi:providers:kubernetes", "gke-provider"),
          (p) =>
            (p.kubeconfig = String(p.kubeconfig).replace(
              /exec:[\s\S]*$/,
              "token: ya29.long-lived\n",
            )),
        ),
      "gke-provider: kubeconfig holds a static credential (token); authenticate with an exec plugin such as gke-gcloud-auth-plugin",
    ],
  ];

  it.each(cases)("rejects %s", async (_what, policy, resource, message) => {
    const outcome = await validate(policy, resource(), policyConfig("gke"));
    expect(outcome.applicable).toBe(true);
    const violations = outcome.applicable ? outcome.violations : [];
    // The originals pass (above), so the edit is what fails the policy, with this message.
    expect(violations).toContainEqual(expect.stringContaining(message));
  });

  it("allows the scoring Service as a LoadBalancer on dev, whose config allows it, but not on gke", async () => {
    const service = broken(
      one(dev(), "kubernetes:core/v1:Service", "scoring-service"),
      (p) => (p.spec.type = "LoadBalancer"),
    );
    expect(await validate(loadBalancersWhereAllowed, service, policyConfig("dev"))).toEqual({
      applicable: true,
      violations: [],
    });
    const onGke = await validate(loadBalancersWhereAllowed, service, policyConfig("gke"));
    expect(onGke.applicable && onGke.violations.length).toBe(1);
  });

  it("allows only the Istio gateway's Service when no policy config is given", async () => {
    const gateway = one(dev(), "kubernetes:core/v1:Service", "istio-gateway-service");
    expect(await validate(loadBalancersWhereAllowed, asAnalyzed(gateway))).toEqual({
      applicable: true,
      violations: [],
    });
    const renamed = { ...asAnalyzed(gateway), name: "other-gateway" };
    const outcome = await validate(loadBalancersWhereAllowed, renamed);
    expect(outcome.applicable && outcome.violations).toEqual([
      "other-gateway asks for a LoadBalancer, which this stack allows only for [istio-gateway-service]; use ClusterIP behind the gateway, or allow it in infra/policy/config/<stack>.json",
    ]);
  });

  it("counts a gateway chart that would make its own load balancer", async () => {
    const chart = broken(
      one(dev(), "kubernetes:helm.sh/v3:Release", "istio-gateway"),
      (p) => (p.values.service.type = "LoadBalancer"),
    );
    const outcome = await validate(loadBalancersWhereAllowed, chart, policyConfig("gke"));
    expect(outcome.applicable && outcome.violations.length).toBe(1);
  });

  it("rejects a second public entry point in the stack", async () => {
    const resources = asStack(dev(), (name, props) => {
      if (name === "scoring-service") {
        props.spec.type = "LoadBalancer";
      }
    });
    expect(await validateStack(singlePublicEntryPoint, resources)).toEqual([
      "2 resources ask for a load balancer (istio-gateway-service, scoring-service); expose one entry point",
    ]);
  });

  it("checks with its pod policies exactly the workload policy the infra tests assert", async () => {
    // Breaks every rule at once, so a rule the pack and podPolicyViolations disagree on shows.
    const pod: PodSpec = {
      hostPID: true,
      securityContext: { runAsUser: 0 },
      initContainers: [{ name: "init", image: "busybox:1.36" }],
      containers: [
        {
          name: "app",
          image: "app:latest",
          ports: [{ hostPort: 80 }],
          securityContext: { privileged: true, capabilities: { add: ["NET_ADMIN"] } },
        },
      ],
      volumes: [{ name: "host", hostPath: { path: "/" } }],
    };
    // Every resource policy, so a pod rule added to the pack but not to the workload policy fails.
    const fromPack: string[] = [];
    for (const policy of resourcePolicies) {
      const outcome = await validate(policy, {
        type: "kubernetes:core/v1:Pod",
        name: "everything",
        props: { spec: pod },
      });
      fromPack.push(...(outcome.applicable ? outcome.violations : []));
    }
    const expected = podPolicyViolations(pod);
    expect(expected.length).toBeGreaterThanOrEqual(20);
    expect(fromPack.sort()).toEqual(expected.map((v) => `everything: ${v}`).sort());
  });

  it("does not apply the pod policies to objects that run no pods", async () => {
    const service = one(dev(), "kubernetes:core/v1:Service", "scoring-service");
    for (const policy of podPolicies) {
      expect(await validate(policy, asAnalyzed(service))).toEqual({
        applicable: false,
      });
    }
  });
});

describe("the canary's route and gate under the policies", () => {
  const run = () => canaryRuns.get("dev") as RecordedRun;
  const routeName = "ingress-virtual-service";

  it("applies the pod policies to the gate's Job, which needs resources but no probes", async () => {
    const job = one(run(), "kubernetes:batch/v1:Job", "canary-gate-job");
    for (const policy of podPolicies) {
      expect([policy.name, await validate(policy, asAnalyzed(job))]).toEqual([
        policy.name,
        { applicable: true, violations: [] },
      ]);
    }
    const greedy = broken(job, (p) => delete p.spec.template.spec.containers[0].resources.limits);
    expect(await validate(podProbesAndResources, greedy)).toEqual({
      applicable: true,
      violations: [
        'canary-gate-job: container "gate": no cpu limit',
        'canary-gate-job: container "gate": no memory limit',
      ],
    });
  });

  it("still asks probes of a pod that serves until stopped", async () => {
    const job = one(run(), "kubernetes:batch/v1:Job", "canary-gate-job");
    const serving = broken(job, (p) => (p.spec.template.spec.restartPolicy = "Always"));
    expect(await validate(podProbesAndResources, serving)).toEqual({
      applicable: true,
      violations: [
        'canary-gate-job: container "gate": no readinessProbe; traffic would reach it before it is ready',
        'canary-gate-job: container "gate": no livenessProbe; a hung process would never be restarted',
      ],
    });
  });

  it("finds the weighted route waiting for the gate, with weights that add up to 100", async () => {
    expect(await validateStack(weightedRoutesGated, asStack(run()))).toEqual([]);
  });

  it("rejects a weighted route that waits for no Job", async () => {
    const resources = asStack(run()).map((r) =>
      r.name === routeName
        ? { ...r, dependencies: r.dependencies.filter((d) => d.type !== "kubernetes:batch/v1:Job") }
        : r,
    );
    expect(await validateStack(weightedRoutesGated, resources)).toEqual([
      `${routeName} shares traffic between destinations but waits for no Job; make it depend on ` +
        "the canary's golden-request gate, so a model that fails it gets no traffic",
    ]);
  });

  it("rejects weights that do not add up to 100", async () => {
    const resources = asStack(run(), (name, props) => {
      if (name === routeName) {
        props.spec.http[2].route[1].weight = 20;
      }
    });
    expect(await validateStack(weightedRoutesGated, resources)).toEqual([
      `${routeName}: route "scoring" shares traffic by weights 90 + 20 = 110; they must add up to 100`,
    ]);
  });

  it("has nothing to say about a route to one Service", async () => {
    expect(
      await validateStack(weightedRoutesGated, asStack(runs.get("dev") as RecordedRun)),
    ).toEqual([]);
  });
});

describe("secret outputs (what no policy can see)", () => {
  it("keeps the gke kubeconfig a secret output; the dev stack exports none", () => {
    // @pulumi/policy unwraps secrets before policies run, so this is checked on the program.
    expect((runs.get("gke") as RecordedRun).secretOutputs).toEqual(new Set(["kubeconfig"]));
    expect((runs.get("dev") as RecordedRun).secretOutputs).toEqual(new Set());
  });

  it("passes the kubeconfig to the gke provider and the registry token to the image as secrets", () => {
    const gke = runs.get("gke") as RecordedRun;
    expect(
      isSecretValue(gke.one("pulumi:providers:kubernetes", "gke-provider").inputs.kubeconfig),
    ).toBe(true);
    const registry = gke.one("docker:index/image:Image", "service-image").inputs.registry;
    // The SDK marks the whole registry block secret, which covers the password inside it.
    expect(isSecretValue(registry)).toBe(true);
    expect(isSecretValue(registry) && registry.value).toMatchObject({
      username: "oauth2accesstoken",
    });
  });
});
