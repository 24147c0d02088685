import {
  podPolicyViolations,
  podSpecOf as podSpecOfResource,
  type PodSpec,
} from "../../../infra/policy/workloads";
import { describeObject, type KubernetesObject } from "./kubernetes";

/**
 * The Pulumi type token of an object (`kubernetes:apps/v1:Deployment`): the policy pack
 * recognises pod-running resources by token, the tests hold plain objects.
 */
function resourceType(object: KubernetesObject): string {
  const groupVersion = object.apiVersion.includes("/")
    ? object.apiVersion
    : `core/${object.apiVersion}`;
  return `kubernetes:${groupVersion}:${object.kind}`;
}

/** The pod spec an object runs, as the policy pack finds it; undefined when it runs no pods. */
export function podSpecOf(object: KubernetesObject): PodSpec | undefined {
  return podSpecOfResource(resourceType(object), object);
}

/**
 * Throws an Error listing every way the pods an object runs break the policy pack's workload
 * policy; objects that run no pods pass.
 */
export function assertPodPolicy(object: KubernetesObject): void {
  const pod = podSpecOf(object);
  if (!pod) {
    return;
  }
  const problems = podPolicyViolations(pod);
  if (problems.length > 0) {
    throw new Error(
      `${describeObject(object)} breaks the workload policy:\n- ${problems.join("\n- ")}`,
    );
  }
}
