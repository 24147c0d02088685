import type { StackValidationPolicy } from "@pulumi/policy";
import { valueAt } from "./workloads";

const VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService";
const JOB = "kubernetes:batch/v1:Job";

/** An HTTP route of a VirtualService, as far as the policies read it. */
interface HttpRoute {
  readonly name?: string;
  readonly route?: ReadonlyArray<{ readonly weight?: number }>;
}

/**
 * Mandatory: a route that shares traffic between destinations sends real requests to a new
 * model, so it must wait for that model's golden-request gate (a Job, which Pulumi waits on and
 * fails `up` with): a model that answers wrongly then never gets its share. And the shares must
 * add up to 100, or Istio rejects (or rescales) them.
 */
export const weightedRoutesGated: StackValidationPolicy = {
  name: "weighted-routes-gated",
  description:
    "A VirtualService that shares traffic by weight waits for a Job (the canary's golden-request " +
    "gate), and each shared route's weights add up to 100.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    for (const resource of args.resources.filter((r) => r.type === VIRTUAL_SERVICE)) {
      const routes = (valueAt(resource.props, "spec.http") ?? []) as readonly HttpRoute[];
      const shared = routes.filter((route) => (route.route ?? []).length > 1);
      for (const route of shared) {
        const weights = (route.route ?? []).map((destination) => destination.weight ?? 0);
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        if (total !== 100) {
          report(
            `${resource.name}: route "${route.name ?? "?"}" shares traffic by weights ` +
              `${weights.join(" + ")} = ${total}; they must add up to 100`,
          );
        }
      }
      if (shared.length > 0 && !resource.dependencies.some((d) => d.type === JOB)) {
        report(
          `${resource.name} shares traffic between destinations but waits for no Job; make it ` +
            "depend on the canary's golden-request gate, so a model that fails it gets no traffic",
        );
      }
    }
  },
};
