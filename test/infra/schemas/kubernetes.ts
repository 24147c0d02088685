import Ajv, { type ValidateFunction } from "ajv";
import {
  DestinationRule,
  Gateway,
  VirtualService,
} from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import gmpCrds from "./gmp-crds.json";
import metallbCrds from "./metallb-crds.json";

/** A Kubernetes object as a plain value: what a resource's inputs look like. */
export interface KubernetesObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly [field: string]: unknown;
}

/** A model class of kubernetes-models: constructs from plain data, `validate()` throws. */
interface ValidatingModel {
  validate(): void;
}
type ModelClass = new (data: never) => ValidatingModel;

/** Upstream schemas of the built-in kinds the stacks declare, from kubernetes-models. */
const KUBERNETES_MODELS: Readonly<Record<string, ModelClass>> = {
  "v1/Namespace": Namespace,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Secret": Secret,
  "v1/ConfigMap": ConfigMap,
  "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};

/**
 * Istio's schemas. @kubernetes-models/istio ships v1beta1 only; Istio 1.22 promoted these kinds to
 * v1 with an identical schema, so v1 objects are checked against v1beta1.
 */
const ISTIO_MODELS: Readonly<Record<string, ModelClass>> = {
  Gateway: Gateway,
  VirtualService: VirtualService,
  DestinationRule: DestinationRule,
};
const ISTIO_GROUP = "networking.istio.io";
const ISTIO_SCHEMA_VERSION = `${ISTIO_GROUP}/v1beta1`;

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(metallbCrds, "metallb");
ajv.addSchema(gmpCrds, "gmp");
/** Hand-written CRD schemas, by `apiVersion kind`. */
const CRD_VALIDATORS: Readonly<Record<string, { crd: string; validate: ValidateFunction }>> = {
  "metallb.io/v1beta1 IPAddressPool": {
    crd: "MetalLB",
    validate: ajv.getSchema("metallb#/IPAddressPool") as ValidateFunction,
  },
  "metallb.io/v1beta1 L2Advertisement": {
    crd: "MetalLB",
    validate: ajv.getSchema("metallb#/L2Advertisement") as ValidateFunction,
  },
  "monitoring.googleapis.com/v1 PodMonitoring": {
    crd: "managed Prometheus",
    validate: ajv.getSchema("gmp#/PodMonitoring") as ValidateFunction,
  },
};

/** Names an object in messages: `Deployment ns/name`. */
export function describeObject(object: KubernetesObject): string {
  const name = object.metadata?.name ?? "(unnamed)";
  const namespace = object.metadata?.namespace;
  return `${object.kind} ${namespace ? `${namespace}/` : ""}${name}`;
}

/**
 * Validates one object against its upstream schema: kubernetes-models for built-in kinds,
 * @kubernetes-models/istio for Istio networking, the hand-written CRD schema fixtures for
 * metallb.io and managed Prometheus's PodMonitoring.
 * Throws an Error naming the object and every violation; throws too for a kind no schema covers,
 * so a new kind cannot slip through unchecked.
 */
export function validateKubernetesObject(object: KubernetesObject): void {
  const { apiVersion, kind } = object;
  const builtIn = KUBERNETES_MODELS[`${apiVersion}/${kind}`];
  if (builtIn) {
    runModel(builtIn, object, object);
    return;
  }
  if (apiVersion === `${ISTIO_GROUP}/v1` || apiVersion === ISTIO_SCHEMA_VERSION) {
    const istio = ISTIO_MODELS[kind];
    if (istio) {
      runModel(istio, { ...object, apiVersion: ISTIO_SCHEMA_VERSION }, object);
      return;
    }
  }
  const crd = CRD_VALIDATORS[`${apiVersion} ${kind}`];
  if (crd) {
    if (!crd.validate(object)) {
      const problems = (crd.validate.errors ?? []).map(
        (e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`,
      );
      throw new Error(
        `${describeObject(object)} violates the ${crd.crd} CRD schema: ${problems.join("; ")}`,
      );
    }
    return;
  }
  throw new Error(`${describeObject(object)}: no schema known for ${apiVersion} ${kind}`);
}

function runModel(model: ModelClass, data: KubernetesObject, original: KubernetesObject): void {
  try {
    new model(data as never).validate();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${describeObject(original)} violates the ${original.apiVersion} schema: ${reason}`,
    );
  }
}
