/**
 * Just enough of Istio's networking API for the engine test's "cluster that runs Istio already":
 * CustomResourceDefinitions of Gateway, VirtualService and DestinationRule at
 * networking.istio.io/v1, written for this test (Istio's charts cannot be fetched here, and none
 * of Istio's files are copied). The API server then stores and validates the program's objects;
 * no istiod or gateway runs, so nothing routes by them. The schemas check what the test relies
 * on (a route's destinations and weights, a rule's host) and keep every other field as given.
 */

const GROUP = "networking.istio.io";

type Schema = Record<string, unknown>;

/** An object whose fields beyond `properties` are kept as they are. */
const open = (properties: Record<string, Schema> = {}, required?: string[]): Schema => ({
  type: "object",
  "x-kubernetes-preserve-unknown-fields": true,
  properties,
  ...(required ? { required } : {}),
});

const destination = open({ host: { type: "string" } }, ["host"]);

const SPECS: Record<string, Schema> = {
  Gateway: open({
    selector: { type: "object", additionalProperties: { type: "string" } },
    servers: { type: "array", items: open() },
  }),
  VirtualService: open({
    hosts: { type: "array", items: { type: "string" } },
    gateways: { type: "array", items: { type: "string" } },
    http: {
      type: "array",
      items: open({
        name: { type: "string" },
        route: {
          type: "array",
          items: open({ destination, weight: { type: "integer", minimum: 0, maximum: 100 } }, [
            "destination",
          ]),
        },
      }),
    },
  }),
  DestinationRule: open({ host: { type: "string" }, trafficPolicy: open() }, ["host"]),
};

/** The three CRDs, as objects to POST to /apis/apiextensions.k8s.io/v1/customresourcedefinitions. */
export function istioCrds(): Record<string, unknown>[] {
  return Object.entries(SPECS).map(([kind, spec]) => {
    const plural = `${kind.toLowerCase()}s`;
    return {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${plural}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: "Namespaced",
        names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: { spec, status: open() },
              },
            },
          },
        ],
      },
    };
  });
}
